package health

// setPaused stops or resumes the probes of t for its node's admin state
// maint. A paused target keeps its verdict as last written: the absence of
// probes says nothing about the node, so it neither fails nor passes, and a
// lost lease rewrites the verdict as before. On resume the rise and fall
// counts start again and the first probe comes within one interval.
func (c *Checker) setPaused(t *target, paused bool) {
	if t.paused == paused {
		return
	}
	t.paused = paused
	if paused {
		c.unschedule(t)
		t.hurry = false
		c.log.Info("node in maint: probes stopped, verdict kept", "service", t.Service, "node", t.Node)
		return
	}
	t.passes, t.fails = 0, 0
	c.log.Info("node out of maint: probing again", "service", t.Service, "node", t.Node)
	if !t.running {
		c.schedule(t, c.o.Clock.Now().Add(jitter(t.Check.Interval.D())))
	}
}
