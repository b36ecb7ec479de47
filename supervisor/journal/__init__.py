"""The decision journal on disk: the SQLite file and its writer process, the
store that turns records into rows, the query and explain readers, and the
restart recall. The actor that writes it is actors.journal."""
