//! The Bytebase v1 emulator.
