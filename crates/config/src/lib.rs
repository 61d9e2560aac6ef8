//! edgeguard config (under construction).
