"""The query layer: what the API (and the web pages) read, with consent decided once
for the viewer; routes only map HTTP to these functions."""
