"""Streamlit-only helpers of the ECI Explorer dashboard (state, sidebar, shared widgets).

``eci_core`` never imports this package; everything here is UI plumbing around ``eci_core``.
"""
