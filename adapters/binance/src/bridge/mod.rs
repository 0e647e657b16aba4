//! Bridge (todo).
