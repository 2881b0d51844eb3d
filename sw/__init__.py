"""Host side: model compiler, driver, backends and command line."""
