//! The live snapshot: one normalized JSON document of the Bytebase configuration that the policies
//! read, whether it came from the API just now or from a file written by `cabgate snapshot`.
