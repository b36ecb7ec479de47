"""Where state comes from: bounded HTTP fetches, the upstream contracts' parsers,
and the SQLite baseline store. No actors here: the actors in `actors/` use these.
"""
