//! skiff-gateway
