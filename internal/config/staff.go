package config

import (
	"fmt"
	"strconv"
	"strings"
)

// StaffUser is a helpdesk agent: the Telegram user id the bot recognises,
// and the short label beneficiaries see in the consent SMS and /history.
// The label stands in for the id, so that agents' Telegram accounts are
// not exposed to the public.
type StaffUser struct {
	ID    int64
	Label string
}

// StaffUsers decodes OTPGATE_STAFF_USERS: "id:label,id:label".
type StaffUsers []StaffUser

// maxStaffLabel keeps the label short: it is a variable of a DLT-registered
// SMS template.
const maxStaffLabel = 16

// Decode implements envconfig.Decoder. Problems name the item, never more.
func (s *StaffUsers) Decode(value string) error {
	*s = nil
	if strings.TrimSpace(value) == "" {
		return nil
	}
	seen := map[int64]bool{}
	labels := map[string]bool{}
	for _, item := range strings.Split(value, ",") {
		item = strings.TrimSpace(item)
		idText, label, hasLabel := strings.Cut(item, ":")
		id, err := strconv.ParseInt(strings.TrimSpace(idText), 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a Telegram user id followed by :label", item)
		}
		label = strings.TrimSpace(label)
		if !hasLabel || label == "" {
			return fmt.Errorf("%d has no label; write %d:<label>, a short name or number that beneficiaries see instead of the Telegram id", id, id)
		}
		if len(label) > maxStaffLabel || !allOf(label, isLabelByte) {
			return fmt.Errorf("label %q of %d: use 1-%d of A-Z a-z 0-9 . _ - and spaces", label, id, maxStaffLabel)
		}
		if seen[id] {
			return fmt.Errorf("%d is listed twice", id)
		}
		if labels[label] {
			return fmt.Errorf("label %q is used twice: beneficiaries could not tell the agents apart", label)
		}
		seen[id], labels[label] = true, true
		*s = append(*s, StaffUser{ID: id, Label: label})
	}
	return nil
}

func isLabelByte(b byte) bool { return isAlnum(b) || b == '.' || b == '_' || b == '-' || b == ' ' }

// Labels maps each agent's Telegram user id to its label.
func (s StaffUsers) Labels() map[int64]string {
	m := make(map[int64]string, len(s))
	for _, u := range s {
		m[u.ID] = u.Label
	}
	return m
}

// String lists the users as configured, for `otpgate config`.
func (s StaffUsers) String() string {
	parts := make([]string, len(s))
	for i, u := range s {
		parts[i] = strconv.FormatInt(u.ID, 10) + ":" + u.Label
	}
	return strings.Join(parts, ",")
}
