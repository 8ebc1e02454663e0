package seed

import "time"

// TendOnTicks makes a cluster of cfg tend once for every value sent on
// ticks instead of every TendInterval, so a test counts rounds, not time.
func TendOnTicks(cfg *Config, ticks <-chan time.Time) { cfg.tendTicks = ticks }

// WithClock staggers a dial's attempts on a test's clock: now reads it, after
// returns a channel that receives once it has moved on by d.
func WithClock(now func() time.Time, after func(d time.Duration) <-chan time.Time) Option {
	return func(o *options) { o.now, o.after = now, after }
}
