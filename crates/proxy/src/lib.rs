//! edgeguard proxy (under construction).
