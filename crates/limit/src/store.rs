//! The trait behind which keyed state sits.
