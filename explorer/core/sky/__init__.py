"""Sky access for queries: where a position is and what the sky looks like there.

- :mod:`explorer.core.sky.coords`  parse typed coordinates (decimal, sexagesimal, J-names; ICRS/FK5/galactic)
- :mod:`explorer.core.sky.names`   resolve object names (Sesame), cached on disk, offline-safe;
                              ``position_of`` takes coordinates or a name
- :mod:`explorer.core.sky.cutouts` cutout providers: a local FITS collection, SkyView, hips2fits;
                              ``provider_for("hips:CDS/P/DSS2/color")`` picks one from a survey string
- :mod:`explorer.core.sky.upload`  validate an uploaded FITS image before it is embedded
- :mod:`explorer.core.sky.network` deadlines, bounded retries, offline/timeout detection, and the
                              ``EXPLORER_SESAME_URL`` / ``EXPLORER_SKYVIEW_URL`` / ``EXPLORER_HIPS2FITS_URL``
                              overrides (how tests point the app at a loopback server)

Every failure a user can cause is an :class:`explorer.core.errors.InputError` with a one-line message.
"""
