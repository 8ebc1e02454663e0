package seed

import "time"

// TendOnTicks makes a cluster of cfg tend once for every value sent on
// ticks instead of every TendInterval, so a test counts rounds, not time.
func TendOnTicks(cfg *Config, ticks <-chan time.Time) { cfg.tendTicks = ticks }
