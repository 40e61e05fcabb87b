//! skiff-invoker
