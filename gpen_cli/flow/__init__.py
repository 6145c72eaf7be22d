"""How work moves between threads, for the engines that keep a device busy: `gpen batch`
(photos) and `gpen video` (frames) both build on it.

    gather.py      faces of several photos (or frames) packed into forward batches of a fixed size
    read_ahead.py  an iterator read ahead in a thread of its own, into a bounded buffer
"""
