package main

// Fault rules (faults.go lists every kind): what a rule matches, what it
// does, and how a posted one is checked and completed.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/vmware/govmomi/vim25/types"
)

const (
	kindSOAPFault     = "soap_fault"
	kindTaskFail      = "task_fail"
	kindTaskHang      = "task_hang"
	kindLatency       = "latency"
	kindReset         = "reset"
	kindHTTPError     = "http_error"
	kindStall         = "stall"
	kindSessionExpiry = "session_expiry"
	kindRestart       = "restart"
)

// faultRule is one armed fault, as posted and as listed.
type faultRule struct {
	ID   int    `json:"id"`
	Kind string `json:"kind"`

	// What it matches.
	Method     string `json:"method,omitempty"`
	Object     string `json:"object,omitempty"`
	DRSRule    string `json:"drs_rule,omitempty"`
	HTTPMethod string `json:"http_method,omitempty"`
	Path       string `json:"path,omitempty"`
	Target     string `json:"target,omitempty"` // reset, http_error, stall: folder or nfc
	Times      int    `json:"times"`
	Skip       int    `json:"skip,omitempty"`

	// What it does.
	Fault         string  `json:"fault,omitempty"`
	Message       string  `json:"message,omitempty"`
	Arg           string  `json:"arg,omitempty"`
	Progress      []int32 `json:"progress,omitempty"`
	StepMS        int     `json:"step_ms,omitempty"`
	Seconds       float64 `json:"seconds,omitempty"`
	MS            int     `json:"ms,omitempty"`
	Status        int     `json:"status,omitempty"`
	CutAfterBytes int64   `json:"cut_after_bytes,omitempty"`

	Hits    int  `json:"hits"`
	Seen    int  `json:"seen"`
	Stalled *int `json:"stalled,omitempty"` // stall: transfers held now (set by listed)

	cut     bool          // cut_after_bytes was given (0 included)
	claimed int           // stall: transfers it fired for, not yet stalled
	stalls  int           // stall: transfers held now
	cleared chan struct{} // closed when the rule is cleared
	until   time.Time     // restart: end of the outage
}

// fire counts a matching call and tells whether the rule acts on it.
// A stall rule counts its hit only once the transfer stalls (stallGate),
// a claim meanwhile. The caller holds faults.mu.
func (r *faultRule) fire() bool {
	if r.Times > 0 && r.Hits+r.claimed >= r.Times {
		return false
	}
	r.Seen++
	if r.Seen <= r.Skip {
		return false
	}
	if r.Kind == kindStall {
		r.claimed++
	} else {
		r.Hits++
	}
	return true
}

// listed is the rule as listed. The caller holds faults.mu.
func (r *faultRule) listed() faultRule {
	out := *r
	if r.Kind == kindStall {
		n := r.stalls
		out.Stalled = &n
	}
	return out
}

// Targets of the file transfer rules.
const (
	targetFolder = "folder" // datastore files, /folder/
	targetNFC    = "nfc"    // NFC lease URLs, /nfc/
)

// transfer tells whether a rule is for file transfers (/folder/, /nfc/)
// rather than SOAP calls.
func (r *faultRule) transfer() bool {
	return r.Kind == kindHTTPError || r.Kind == kindStall ||
		(r.Kind == kindReset && (r.HTTPMethod != "" || r.Path != "" || r.Target != ""))
}

// matchesTransfer tells whether a transfer rule is for this request to
// target.
func (r *faultRule) matchesTransfer(target string, req *http.Request) bool {
	if r.Target != target {
		return false
	}
	if r.HTTPMethod != "" && !strings.EqualFold(r.HTTPMethod, req.Method) {
		return false
	}
	return r.Path == "" || strings.Contains(req.URL.Path, r.Path)
}

// faultNames are the faults a rule can name.
var faultNames = map[string]func(r *faultRule, this types.ManagedObjectReference) types.BaseMethodFault{
	"NotAuthenticated": func(_ *faultRule, this types.ManagedObjectReference) types.BaseMethodFault {
		return &types.NotAuthenticated{NoPermission: types.NoPermission{Object: &this, PrivilegeId: "System.View"}}
	},
	"NoPermission": func(r *faultRule, this types.ManagedObjectReference) types.BaseMethodFault {
		return &types.NoPermission{Object: &this, PrivilegeId: or(r.Arg, "System.Modify")}
	},
	"InvalidState": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault { return &types.InvalidState{} },
	"InvalidPowerState": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault {
		return &types.InvalidPowerState{}
	},
	"InsufficientResourcesFault": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault {
		return &types.InsufficientResourcesFault{}
	},
	"NoDiskSpace": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.NoDiskSpace{Datastore: r.Arg}
	},
	"HostCommunication": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault {
		return &types.HostCommunication{}
	},
	"SystemError": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.SystemError{Reason: r.Message}
	},
	"TaskInProgress": func(_ *faultRule, this types.ManagedObjectReference) types.BaseMethodFault {
		return &types.TaskInProgress{Task: this}
	},
	"FileNotFound": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.FileNotFound{FileFault: types.FileFault{File: r.Arg}}
	},
	"InvalidArgument": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.InvalidArgument{InvalidProperty: r.Arg}
	},
	"MigrationNotReady": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.MigrationNotReady{Reason: r.Message}
	},
	"DuplicateName": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.DuplicateName{Name: r.Arg}
	},
	"ManagedObjectNotFound": func(_ *faultRule, this types.ManagedObjectReference) types.BaseMethodFault {
		return &types.ManagedObjectNotFound{Obj: this}
	},
	"RequestCanceled": func(*faultRule, types.ManagedObjectReference) types.BaseMethodFault { return &types.RequestCanceled{} },
	"ResourceInUse": func(r *faultRule, _ types.ManagedObjectReference) types.BaseMethodFault {
		return &types.ResourceInUse{Name: r.Arg}
	},
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// methodFault builds the rule's fault for a call on this.
func (r *faultRule) methodFault(this types.ManagedObjectReference) types.BaseMethodFault {
	fault := faultNames[r.Fault](r, this)
	if r.Message != "" {
		f := fault.GetMethodFault()
		f.FaultMessage = append(f.FaultMessage, types.LocalizableMessage{Key: faultKey, Message: r.Message})
	}
	return fault
}

// decodeRule reads and checks a posted rule, filling in defaults.
func decodeRule(body io.Reader) (*faultRule, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	rule := &faultRule{}
	var given struct {
		Times         *int   `json:"times"`
		CutAfterBytes *int64 `json:"cut_after_bytes"`
	}
	if err := json.Unmarshal(raw, rule); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &given); err != nil {
		return nil, err
	}
	rule.Hits, rule.Seen = 0, 0
	if given.Times == nil && rule.Kind != kindLatency {
		rule.Times = 1
	}
	rule.cut = given.CutAfterBytes != nil
	bad := func(format string, a ...any) (*faultRule, error) {
		return nil, fmt.Errorf("%s rule: "+format, append([]any{rule.Kind}, a...)...)
	}
	if rule.Times < 0 || rule.Skip < 0 || rule.Seconds < 0 || rule.MS < 0 || rule.CutAfterBytes < 0 {
		return bad("times, skip, seconds, ms and cut_after_bytes must be >= 0")
	}
	switch rule.Kind {
	case kindSOAPFault, kindTaskFail, kindTaskHang:
		if rule.DRSRule != "" && rule.Method == "" {
			rule.Method = "ReconfigureComputeResource_Task"
		}
		if rule.Method == "" {
			return bad("needs a method")
		}
		if rule.Kind != kindSOAPFault && !strings.HasSuffix(rule.Method, "_Task") {
			return bad("needs a *_Task method")
		}
		if rule.Fault == "" {
			rule.Fault = "SystemError"
			if rule.DRSRule != "" {
				rule.Fault, rule.Arg = "InvalidArgument", or(rule.Arg, "rulesSpec")
			}
		}
		if _, ok := faultNames[rule.Fault]; !ok && rule.Kind != kindTaskHang {
			names := make([]string, 0, len(faultNames))
			for n := range faultNames {
				names = append(names, n)
			}
			sort.Strings(names)
			return bad("unknown fault %q (one of %s)", rule.Fault, strings.Join(names, ", "))
		}
		for _, p := range rule.Progress {
			if p < 0 || p > 100 {
				return bad("progress is percentages")
			}
		}
	case kindLatency:
		if rule.MS <= 0 {
			return bad("needs ms > 0")
		}
	case kindReset:
		if rule.Method == "" && !rule.transfer() {
			return bad("needs a SOAP method, or http_method, path or target for file transfers")
		}
		if rule.transfer() {
			if err := transferTarget(rule); err != nil {
				return bad("%v", err)
			}
		}
	case kindHTTPError:
		if (!rule.cut || rule.Status != 0) && (rule.Status < 400 || rule.Status > 599) {
			return bad("needs a status (400-599) or cut_after_bytes")
		}
		if err := transferTarget(rule); err != nil {
			return bad("%v", err)
		}
		if err := transferMethod(rule); err != nil {
			return bad("%v", err)
		}
	case kindStall:
		if !rule.cut {
			return bad("needs cut_after_bytes (0: before the first byte)")
		}
		if rule.Status != 0 {
			return bad("takes no status (a stalled transfer ends cut)")
		}
		if err := transferTarget(rule); err != nil {
			return bad("%v", err)
		}
		if err := transferMethod(rule); err != nil {
			return bad("%v", err)
		}
	case kindSessionExpiry:
	case kindRestart:
		if rule.Seconds <= 0 {
			return bad("needs seconds > 0")
		}
		if rule.Status != 0 && (rule.Status < 400 || rule.Status > 599) {
			return bad("status is 400-599 (or absent: connections reset)")
		}
	default:
		return nil, fmt.Errorf("unknown kind %q", rule.Kind)
	}
	return rule, nil
}

// transferTarget checks a transfer rule's target, filling it in (nfc for
// a path under /nfc/, else folder), and upper-cases its http_method.
func transferTarget(rule *faultRule) error {
	rule.HTTPMethod = strings.ToUpper(rule.HTTPMethod)
	switch rule.Target {
	case "":
		rule.Target = targetFolder
		if strings.HasPrefix(rule.Path, nfcPathPrefix) {
			rule.Target = targetNFC
		}
	case targetFolder, targetNFC:
	default:
		return fmt.Errorf("target is %q or %q", targetFolder, targetNFC)
	}
	if (rule.Target == targetFolder && strings.HasPrefix(rule.Path, nfcPathPrefix)) ||
		(rule.Target == targetNFC && strings.HasPrefix(rule.Path, folderPrefix)) {
		return fmt.Errorf("path %q is not under /%s/", rule.Path, rule.Target)
	}
	return nil
}

// transferMethod checks a transfer rule's http_method (upper-cased by
// transferTarget) against its target.
func transferMethod(rule *faultRule) error {
	switch rule.HTTPMethod {
	case "", http.MethodPut, http.MethodGet:
	case http.MethodPost:
		if rule.Target != targetNFC {
			return errors.New("http_method is PUT or GET for /folder/ (POST is for target nfc)")
		}
	default:
		return errors.New("http_method is PUT or GET, or POST for target nfc")
	}
	return nil
}
