//! edgeguard store (under construction).
