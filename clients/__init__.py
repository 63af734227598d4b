"""Clients of chatd that live in this repository (the terminal client, ``clients.cli``)."""
