"""The installed face of the toolkit: console commands that run a CoOp-style checkout.

The toolkit is used as CoOp is, from a checkout (configs/, descriptions/, trainers/, datasets/ stay at its
top). Installing puts only this one distinctively named package into site-packages, so that no generic
name (datasets, engine, runs, ...) shadows or overwrites another distribution's: each command finds the
checkout (:mod:`vr_toolkit.checkout`) and puts it on the sys.path of its own process only.
"""
