"""Protocol buffer sources and their generated Python modules."""
