package telegram

import (
	"testing"
	"time"
)

func TestReachableFollowsTheClock(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	h := health{clock: clk}
	if h.reachable(time.Minute) {
		t.Fatal("reachable before any call")
	}
	h.ok()
	clk.add(59 * time.Second)
	if !h.reachable(time.Minute) || h.quiet(time.Minute) {
		t.Fatal("a call 59 s ago should count within a minute")
	}
	clk.add(2 * time.Second)
	if h.reachable(time.Minute) || !h.quiet(time.Minute) {
		t.Fatal("a call 61 s ago is stale")
	}
	h.ok()
	clk.add(time.Second)
	h.fail()
	if h.reachable(time.Minute) {
		t.Fatal("the latest call failed")
	}
	clk.add(time.Second)
	h.ok()
	if !h.reachable(time.Minute) {
		t.Fatal("a success after the failure")
	}
}
