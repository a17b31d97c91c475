"""Sky access for queries: where a position is and what the sky looks like there.

- :mod:`explorer.sky.coords`  parse typed coordinates (decimal, sexagesimal, J-names; ICRS/FK5/galactic)
- :mod:`explorer.sky.names`   resolve object names (Sesame via astroquery), cached on disk, offline-safe
- :mod:`explorer.sky.cutouts` cutout providers: a local FITS collection, SkyView, hips2fits
- :mod:`explorer.sky.upload`  validate an uploaded FITS image before it is embedded

Every failure a user can cause is an :class:`explorer.errors.InputError` with a one-line message.
"""
