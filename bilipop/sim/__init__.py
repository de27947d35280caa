"""A local Bilibili-compatible server for the demo and the tests: ``SimServer``, ``FaultConfig``, ``World``.

What causes a simulated video's views — its cover's look, its title's words, its uploader, its age and luck, in
stated shares — is ``bilipop.sim.popularity``; ``truth()`` exposes each video's age-free appeal.

Start one with ``python -m bilipop.sim --port 0`` or in-process::

    with SimServer(videos=500, seed=1) as sim:
        crawl(api_base=sim.base_url, ...)
        sim.truth()
"""

from bilipop.sim.faults import FaultConfig
from bilipop.sim.server import SimServer
from bilipop.sim.world import World

__all__ = ["FaultConfig", "SimServer", "World"]
