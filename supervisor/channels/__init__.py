"""How state and orders travel to the gate between threads: the `GateLink`
(state to whichever gate runs), the `EssBoard` (a halt that overtakes queued
orders), the `ReplySlot` (one answer to one waiting caller) and the gate's
inbox. Every use of pykka internals lives in `inbox`.
"""
