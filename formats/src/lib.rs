//! ndstream-formats: storage formats as chunk sources and sinks.
