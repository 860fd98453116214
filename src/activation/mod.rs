//! What a managed daemon links: std + nix + libc only.
