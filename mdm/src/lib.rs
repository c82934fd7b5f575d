//! mdm
