"""The web dashboard's files (``index.html``, ``app.js``, ``app.css``): plain HTML, JS and
CSS, no build step and nothing from a CDN, served by :mod:`corral.daemon.api.ui`."""
