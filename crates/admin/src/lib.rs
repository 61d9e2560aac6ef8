//! edgeguard admin (under construction).
