"""A sink that brings stuck phones back: the ladder from gentle to forceful (docs/recovery.md).

``usb`` knows where a device hangs in the USB tree and how to replug it or
switch its port's power; ``ladder`` decides when to try, in what order, and
when to give up.
"""
