package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/otp"
	"github.com/otpgate/otpgate/otp/otptest"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

// benchSoak runs whole flows (code request, a wrong code now and then, the
// right code, the list, a record, logout) without pause for a while, with
// value-log GC every 30 s as serve runs it, and prints what the store holds
// and its disk use as it goes: short-lived state (codes, grants, counters)
// must level off; only records and the audit trail may grow.
func benchSoak(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	duration := fs.Duration("duration", 6*time.Minute, "how long to run")
	workers := fs.Int("workers", 8, "concurrent flows")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "otpbench-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ph := &otptest.Phone{}
	a, err := newApp(filepath.Join(dir, "db"), app.Deps{Channel: app.ChannelConsole, Sender: ph, SMSWorkers: *workers,
		Logger: slog.New(slog.DiscardHandler), TunePolicy: func(p *otp.Policy) {
			p.WrongPerMobile.Period, p.WrongPerRequester.Period = time.Minute, time.Minute
		}}, func(c *config.Config) {
		// Short windows, so that a few minutes show whether expired state goes.
		c.OTPTTL, c.GrantTTL, c.ResendCooldown = 30*time.Second, 30*time.Second, 0
		c.RequestsPerRequesterHour, c.SendsPerMobileHour, c.SendsPerMobileDay = 1_000_000, 1_000_000, 1_000_000
		c.SendsPerPrefixHour, c.GlobalSMSPerHour = 1_000_000, 1_000_000
	})
	if err != nil {
		return err
	}
	defer a.Stop()
	st, svc := a.Store, a.OTP
	const users = 500
	mobiles, err := seedMobiles(st, 9200000000, users, 1)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var flows, failures atomic.Int64
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				// Each worker owns the users ≡ w (mod workers): no two flows
				// race for one phone.
				i := w + *workers*rng.IntN(users / *workers)
				if err := soakFlow(ctx, svc, st, ph, fmt.Sprintf("soak:%d", i), mobiles[i], rng.IntN(10) == 0); err != nil {
					if ctx.Err() == nil {
						if failures.Add(1) <= 3 {
							fmt.Println("a flow failed:", err)
						}
					}
					continue
				}
				flows.Add(1)
			}
		}()
	}
	fmt.Printf("%8s %8s %7s %7s %7s %8s %9s %9s\n", "elapsed", "flows", "codes", "grants", "counter", "audit", "disk MB", "B/audit")
	start := time.Now()
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
		}
		if err := st.CollectGarbage(); err != nil {
			return err
		}
		c, err := st.Census(context.Background())
		if err != nil {
			return err
		}
		disk, _ := dirSize(filepath.Join(dir, "db"))
		fmt.Printf("%8s %8d %7d %7d %7d %8d %9.1f %9.0f\n", time.Since(start).Round(time.Second), flows.Load(),
			c.Challenges, c.Grants, c.Counters, c.Audit, float64(disk)/1e6, float64(disk)/float64(max(c.Audit, 1)))
	}
	wg.Wait()
	// One in ten flows starts with a wrong code and each user runs dozens of
	// flows a minute, so the per-user guess limit (10 a minute here) is
	// reached now and then: those flows fail by design.
	fmt.Printf("failed flows: %d (guess limits reached at this pace; see the first ones above)\n", failures.Load())
	return nil
}

func soakFlow(ctx context.Context, svc *otp.Service, st *store.Store, ph *otptest.Phone, requester string, m pii.Mobile, wrongFirst bool) error {
	before := ph.Code(m.E164())
	_, err := svc.Request(ctx, otp.Request{Requester: requester, Identifier: pii.Identifier{Kind: pii.KindMobile, Mobile: m},
		Audience: store.AudienceBeneficiary, Lang: "en"})
	if err != nil {
		return err
	}
	var code string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if code = ph.Code(m.E164()); code != "" && code != before {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no code")
		}
	}
	if wrongFirst {
		_, _ = svc.Verify(ctx, requester, store.AudienceBeneficiary, "000000")
	}
	g, err := svc.Verify(ctx, requester, store.AudienceBeneficiary, pii.Code(code))
	if err != nil {
		return err
	}
	sums, err := st.Summaries(ctx, g.Ref())
	if err != nil {
		return err
	}
	if _, err := st.Release(ctx, g.Ref(), sums[0].Handle); err != nil {
		return err
	}
	if rand.IntN(2) == 0 { // half log out, half let the grant expire
		return st.EndGrant(ctx, g.Ref())
	}
	return nil
}
