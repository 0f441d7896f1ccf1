package qmp

import (
	"errors"
	"fmt"

	"github.com/govmm/govmm/machine/qmp/qjson"
	"github.com/govmm/govmm/machine/runstate"
)

// argType is the QAPI type of a command argument, named as in QEMU's
// "expected: ..." messages.
type argType string

const (
	argString  argType = "string"
	argInteger argType = "integer"
	argArray   argType = "array" // of strings (the only array argument here)
)

type argSpec struct {
	name     string
	typ      argType
	optional bool
}

type command struct {
	args []argSpec
	fn   func(c *client, args *qjson.Dict) (qjson.Value, error)
}

// commands returns the command table. Kept in QEMU's query-commands order
// for the ones QEMU lists; query-commands reports them in that order.
func (s *Server) commands() []string {
	names := []string{
		"human-monitor-command", "cont", "stop", "query-name", "query-kvm",
		"system_powerdown", "system_reset", "query-uuid", "query-cpus-fast",
		"quit", "query-commands", "query-version", "qmp_capabilities",
		"query-chardev", "query-blockstats", "query-block", "query-status",
	}
	if s.cfg.HMP == nil {
		names = names[1:]
	}
	return names
}

func (s *Server) lookup(name string) *command {
	m := s.cfg.Machine
	noArgs := func(f func() (qjson.Value, error)) *command {
		return &command{fn: func(*client, *qjson.Dict) (qjson.Value, error) { return f() }}
	}
	empty := func(f func() error) *command {
		return noArgs(func() (qjson.Value, error) { return qjson.NewDict(), f() })
	}
	switch name {
	case "qmp_capabilities":
		return &command{
			args: []argSpec{{"enable", argArray, true}},
			fn:   s.qmpCapabilities,
		}
	case "query-status":
		return noArgs(func() (qjson.Value, error) {
			st := m.Status()
			return qjson.NewDict("running", st == runstate.Running, "singlestep", false, "status", st.String()), nil
		})
	case "query-version":
		return noArgs(func() (qjson.Value, error) { return versionValue(s.cfg.Version), nil })
	case "query-name":
		return noArgs(func() (qjson.Value, error) {
			d := qjson.NewDict()
			if n := m.Name(); n != "" {
				d.Set("name", n)
			}
			return d, nil
		})
	case "query-uuid":
		return noArgs(func() (qjson.Value, error) {
			u := m.UUID()
			if u == "" {
				u = "00000000-0000-0000-0000-000000000000"
			}
			return qjson.NewDict("UUID", u), nil
		})
	case "query-kvm":
		return noArgs(func() (qjson.Value, error) {
			k := m.KVM()
			return qjson.NewDict("enabled", k.Enabled, "present", k.Present), nil
		})
	case "query-commands":
		return noArgs(func() (qjson.Value, error) {
			list := []qjson.Value{}
			for _, n := range s.commands() {
				list = append(list, qjson.NewDict("name", n))
			}
			return list, nil
		})
	case "query-cpus-fast":
		return noArgs(func() (qjson.Value, error) {
			list := []qjson.Value{}
			for _, c := range m.CPUs() {
				list = append(list, cpuValue(c))
			}
			return list, nil
		})
	case "query-chardev":
		return noArgs(func() (qjson.Value, error) {
			list := []qjson.Value{}
			for _, c := range m.Chardevs() {
				list = append(list, chardevValue(c))
			}
			return list, nil
		})
	case "query-block":
		return noArgs(func() (qjson.Value, error) {
			list := []qjson.Value{}
			for _, b := range m.Blocks() {
				list = append(list, blockValue(b))
			}
			return list, nil
		})
	case "query-blockstats":
		return &command{
			args: []argSpec{{"query-nodes", "boolean", true}},
			fn: func(*client, *qjson.Dict) (qjson.Value, error) {
				list := []qjson.Value{}
				for _, b := range m.BlockStats() {
					list = append(list, blockStatsValue(b, true))
				}
				return list, nil
			},
		}
	case "stop":
		return empty(m.Stop)
	case "cont":
		return empty(m.Cont)
	case "system_reset":
		return empty(m.SystemReset)
	case "system_powerdown":
		return empty(m.SystemPowerdown)
	case "quit":
		return empty(m.Quit)
	case "human-monitor-command":
		if s.cfg.HMP == nil {
			return nil
		}
		return &command{
			args: []argSpec{{"command-line", argString, false}, {"cpu-index", argInteger, true}},
			fn: func(_ *client, args *qjson.Dict) (qjson.Value, error) {
				if v, ok := args.Get("cpu-index"); ok {
					if i, _ := v.(int64); i < 0 || i >= int64(len(m.CPUs())) {
						return nil, errors.New("Parameter 'cpu-index' expects a CPU number")
					}
				}
				line, _ := args.Get("command-line")
				return s.cfg.HMP(line.(string)), nil
			},
		}
	}
	return nil
}

func (s *Server) qmpCapabilities(c *client, args *qjson.Dict) (qjson.Value, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.negotiated {
		return nil, &Error{ClassCommandNotFound, "Capabilities negotiation is already complete, command ignored"}
	}
	oob := false
	if v, ok := args.Get("enable"); ok {
		for _, e := range v.([]qjson.Value) {
			if e.(string) != "oob" {
				// QAPI's enum visitor names list elements 'null'.
				return nil, fmt.Errorf("Parameter 'null' does not accept value '%s'", e)
			}
			oob = true
		}
	}
	c.negotiated, c.oob = true, oob
	return qjson.NewDict(), nil
}

// errorResponse builds {"error": {...}} with the id when there is one.
func errorResponse(id *qjson.Value, class, desc string) *qjson.Dict {
	rsp := qjson.NewDict("error", qjson.NewDict("class", class, "desc", desc))
	if id != nil {
		rsp.Set("id", *id)
	}
	return rsp
}

// dispatch is QEMU's monitor_qmp_dispatch plus qmp_dispatch: check the
// request's shape, find the command, check its arguments, run it.
func (s *Server) dispatch(c *client, req qjson.Value) *qjson.Dict {
	dict, ok := req.(*qjson.Dict)
	if !ok {
		return errorResponse(nil, ClassGeneric, "QMP input must be a JSON object")
	}
	var id *qjson.Value
	if v, ok := dict.Get("id"); ok {
		id = &v
	}
	c.mu.Lock()
	negotiated, oobOK := c.negotiated, c.oob
	c.mu.Unlock()

	// Members are checked in QDict order, so the first error reported is
	// the one QEMU reports.
	execKey := ""
	for _, k := range dict.Keys() {
		v, _ := dict.Get(k)
		switch {
		case k == "execute" || (k == "exec-oob" && oobOK):
			if _, ok := v.(string); !ok {
				return errorResponse(id, ClassGeneric, fmt.Sprintf("QMP input member '%s' must be a string", k))
			}
			if execKey != "" {
				return errorResponse(id, ClassGeneric, fmt.Sprintf("QMP input member '%s' clashes with '%s'", k, execKey))
			}
			execKey = k
		case k == "arguments":
			if _, ok := v.(*qjson.Dict); !ok {
				return errorResponse(id, ClassGeneric, "QMP input member 'arguments' must be an object")
			}
		case k == "id":
		default:
			return errorResponse(id, ClassGeneric, fmt.Sprintf("QMP input member '%s' is unexpected", k))
		}
	}
	if execKey == "" {
		return errorResponse(id, ClassGeneric, "QMP input lacks member 'execute'")
	}
	v, _ := dict.Get(execKey)
	name := v.(string)

	var cmd *command
	if negotiated || name == "qmp_capabilities" {
		cmd = s.lookup(name)
	}
	if cmd == nil {
		if !negotiated {
			return errorResponse(id, ClassCommandNotFound, "Expecting capabilities negotiation with 'qmp_capabilities'")
		}
		return errorResponse(id, ClassCommandNotFound, fmt.Sprintf("The command %s has not been found", name))
	}
	if execKey == "exec-oob" {
		return errorResponse(id, ClassGeneric, fmt.Sprintf("The command %s does not support OOB", name))
	}

	args, _ := dict.Get("arguments")
	argd, _ := args.(*qjson.Dict)
	if argd == nil {
		argd = qjson.NewDict()
	}
	if msg := checkArgs(cmd.args, argd); msg != "" {
		return errorResponse(id, ClassGeneric, msg)
	}
	ret, err := cmd.fn(c, argd)
	if err != nil {
		class := ClassGeneric
		var qe *Error
		if errors.As(err, &qe) {
			class = qe.Class
		}
		return errorResponse(id, class, err.Error())
	}
	rsp := qjson.NewDict("return", ret)
	if id != nil {
		rsp.Set("id", *id)
	}
	return rsp
}

// checkArgs is QAPI's strict input visitor: declared members first (type,
// then presence), then anything left over.
func checkArgs(spec []argSpec, args *qjson.Dict) string {
	known := map[string]bool{}
	for _, a := range spec {
		known[a.name] = true
		v, ok := args.Get(a.name)
		if !ok {
			if !a.optional {
				return fmt.Sprintf("Parameter '%s' is missing", a.name)
			}
			continue
		}
		if !hasType(v, a.typ) {
			return fmt.Sprintf("Invalid parameter type for '%s', expected: %s", a.name, a.typ)
		}
		if a.typ == argArray {
			for i, e := range v.([]qjson.Value) {
				if _, ok := e.(string); !ok {
					return fmt.Sprintf("Invalid parameter type for '%s[%d]', expected: string", a.name, i)
				}
			}
		}
	}
	if k := firstUnexpected(args.Keys(), known); k != "" {
		return fmt.Sprintf("Parameter '%s' is unexpected", k)
	}
	return ""
}

func hasType(v qjson.Value, t argType) bool {
	switch t {
	case argString:
		_, ok := v.(string)
		return ok
	case argInteger:
		_, ok := v.(int64)
		return ok
	case argArray:
		_, ok := v.([]qjson.Value)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	}
	return false
}
