"""The .dlm front end: parsing (parser.py) and elaboration into a typed graph (elaborate.py)."""
