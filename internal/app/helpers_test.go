package app_test

import (
	"context"
	"testing"

	"github.com/otpgate/otpgate/internal/app"
	"github.com/otpgate/otpgate/internal/app/apptest"
	"github.com/otpgate/otpgate/internal/config"
	"github.com/otpgate/otpgate/pii"
	"github.com/otpgate/otpgate/store"
)

func apptestConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load([]string{"OTPGATE_MASTER_KEY=" + apptest.MasterKey, "OTPGATE_SMS_PROVIDER=console", "OTPGATE_DEVELOPMENT=true"})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func importOne(t *testing.T, a *app.App, m pii.Mobile) {
	t.Helper()
	_, err := a.Store.Import(context.Background(), func(ctx context.Context, fn func(store.ImportRow) error) error {
		return fn(store.ImportRow{Line: 1, Record: store.Record{RefID: "10000000000001", Name: "Test Person", BirthYear: 1980, Gender: "O", Mobile: m}})
	})
	if err != nil {
		t.Fatal(err)
	}
}
