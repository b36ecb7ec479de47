"""How state, records and answers travel between threads: the `GateLink`
(state posted to the gate, its latest kept for the health ages), the
`EssBoard` (a halt every decision reads), the `JournalQueue` (records to the
journal's writer), the `HaltWatch` (halts to the cancel listeners), the
`GateCounters` (the gate's counts for the metrics) and the `ReplySlot` (one
answer to one waiting caller).
"""
