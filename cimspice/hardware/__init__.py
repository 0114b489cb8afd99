"""The hardware: device and cell equations (``devices``, ``cells``), SSM -> circuit mapping
(``mapping``) and the circuit topologies (``state``)."""
