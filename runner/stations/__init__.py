"""Flash stations: devices flashed on the Linux hosts that hold their links, over SSH.

The host reads the product manifest and its station inventory
(``stations:``), compiles the whole plan, and for each station:

* stages what the station needs by SFTP into a content-addressed cache on the
  station (``<work-dir>/cache/<sha256>``): every image, and a manifest of the
  station's own devices and links (:mod:`.staging`);
* starts ``flashrunner station run`` there over SSH (:mod:`.ssh`: asyncssh,
  host keys from ``known_hosts`` only, key authentication, timeouts,
  keepalives; commands are argv lists quoted once with :func:`shlex.join`);
* follows the station's events and merges them into the host's audit log
  (:mod:`.merge`), reconnecting after a dropped connection (:mod:`.dispatch`).

On the station (:mod:`.remote`) the run is a daemon detached from the SSH
channel that writes its events to a run folder; the channel only tails that
folder by ``seq``, so a dropped connection never interrupts a write, and the
outcome can be collected later (``flashrunner collect``).
"""
