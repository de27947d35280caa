"""``bilipop serve``: a local web page that compares covers and titles, and a JSON API for scripts.

Needs the optional web extra (``pip install "bilipop[web]"``); nothing here is imported by ``import bilipop`` or
by ``bilipop --help``. ``server.serve`` runs it in the foreground, ``server.serving`` in a background thread.
"""
