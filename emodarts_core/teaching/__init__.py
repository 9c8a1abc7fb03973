"""Classroom material for the notebooks: the self-checks of their exercises (`exercises`).

This is a user of the whole library, like the notebooks themselves: it sits above
`study` in the layers of docs/ARCHITECTURE.md, and nothing in the library imports it.
"""
