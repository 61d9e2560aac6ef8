//! edgeguard rules (under construction).
