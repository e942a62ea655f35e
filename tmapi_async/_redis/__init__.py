"""Scale-out on Redis (the optional ``redis`` extra): one token's limits shared by every
process that uses it, and a harvest delivered to workers on many machines.

redis-py is imported in :mod:`.connection` only, and only when a Redis URL is used: the
library imports and runs without the extra.
"""
