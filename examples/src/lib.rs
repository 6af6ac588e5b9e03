//! Example apps: placeholder until the examples change lands.
