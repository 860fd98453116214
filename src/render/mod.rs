//! Manifest → files for the service managers. Pure.
