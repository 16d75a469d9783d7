"""The Lightning node database: which peers get our channels.

Modules: ``settings`` (NodeSettings), ``db`` (NodeDB over ``known_ln_nodes.db``), ``sources``
(seed lists), ``providers`` (mempool.space, Amboss, seed URLs), ``throttle`` (persisted
throttles and ``refresh_nodes``), ``ranking`` (``choose_peers``, ``explain``), ``closing``
(``channels_to_close``), ``cli`` (the ``nodes`` commands).
"""
