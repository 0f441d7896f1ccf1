package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSplitCmdline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  console=ttyS0   quiet\n", []string{"console=ttyS0", "quiet"}},
		{`a="b c" "d e"=f g`, []string{"a=b c", "d e=f", "g"}},
		{`x="unterminated y`, []string{"x=unterminated y"}},
		{`""`, []string{""}},
		{"a\tb", []string{"a", "b"}},
	} {
		if diff := cmp.Diff(tc.want, splitCmdline(tc.in)); diff != "" {
			t.Errorf("splitCmdline(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, errs := parseConfig("console=ttyS0 earlyprintk=ttyS0 root=/dev/vda agentx=1")
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	if diff := cmp.Diff(defaultConfig(), c, cmp.AllowUnexported(config{})); diff != "" {
		t.Errorf("non-agent parameters changed the config (-want +got):\n%s", diff)
	}
}

func TestParseConfig(t *testing.T) {
	c, errs := parseConfig(`console=ttyS0 agent.checks=blk,kernel,blk agent.modules=virtio_ring,virtio-pci ` +
		`agent.shell agent.disk=/dev/vdb agent.blk.offset=0x100000 agent.blk.length=8192 ` +
		`agent.blk.seed=7 agent.timeout=5 agent.exit=reboot`)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := config{
		checks: []string{"blk", "kernel"}, explicit: true,
		modules: []string{"virtio_ring", "virtio-pci"}, modulesSet: true,
		shell: true, disk: "/dev/vdb",
		blkOffset: 1 << 20, blkLength: 8192, blkSeed: 7,
		timeout: 5 * time.Second, exit: exitReboot,
	}
	if diff := cmp.Diff(want, c, cmp.AllowUnexported(config{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	c, errs = parseConfig("agent.checks=blk agent.checks=all agent.shell=off")
	if len(errs) != 0 || c.explicit || len(c.checks) != len(allChecks) || c.shell {
		t.Errorf("checks=all / shell=off: %+v, %v", c, errs)
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ param, wantErr string }{
		{"agent.checks=kernel,bogus", `unknown check "bogus"`},
		{"agent.checks=,", "empty list"},
		{"agent.modules=../evil", "not a plain name"},
		{"agent.shell=maybe", "boolean"},
		{"agent.disk=vda", "absolute"},
		{"agent.blk.offset=100", "multiple of 4096"},
		{"agent.blk.offset=-4096", "multiple of 4096"},
		{"agent.blk.length=0", "between"},
		{"agent.blk.length=33554432", "between"},
		{"agent.blk.seed=x", "unsigned"},
		{"agent.timeout=0", "seconds"},
		{"agent.exit=explode", "poweroff"},
		{"agent.frobnicate=1", "unknown parameter agent.frobnicate"},
	} {
		c, errs := parseConfig(tc.param)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.wantErr) {
			t.Errorf("parseConfig(%q): errors %v, want one containing %q", tc.param, errs, tc.wantErr)
		}
		// A bad value leaves the default in force.
		if tc.param != "agent.modules=../evil" {
			if diff := cmp.Diff(defaultConfig(), c, cmp.AllowUnexported(config{})); diff != "" {
				t.Errorf("parseConfig(%q) changed the config:\n%s", tc.param, diff)
			}
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add(`console=ttyS0 agent.checks=blk,rng agent.modules=a,b agent.shell`)
	f.Add(`agent.blk.offset=0x1000 agent.blk.length=4096 agent.timeout=3 "agent.exit=halt"`)
	f.Add(`agent.checks= agent.disk=/x agent.blk.seed=18446744073709551615`)
	f.Fuzz(func(t *testing.T, cmdline string) {
		c, _ := parseConfig(cmdline)
		if c.blkOffset%blkAlign != 0 || c.blkLength%blkAlign != 0 || c.blkLength <= 0 || c.blkLength > 16<<20 {
			t.Fatalf("bad blk range accepted: %d+%d", c.blkOffset, c.blkLength)
		}
		if c.timeout <= 0 || !strings.HasPrefix(c.disk, "/") {
			t.Fatalf("bad config accepted: %+v", c)
		}
		for _, m := range c.modules {
			if strings.ContainsAny(m, "/\\") {
				t.Fatalf("module path accepted: %q", m)
			}
		}
	})
}
