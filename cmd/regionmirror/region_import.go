package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/regionmirror/regionmirror/internal/model"
)

// awsIPRanges is the part of AWS's ip-ranges.json that matters here.
type awsIPRanges struct {
	Prefixes []struct {
		IPPrefix string `json:"ip_prefix"`
		Region   string `json:"region"`
		Service  string `json:"service"`
	} `json:"prefixes"`
	IPv6Prefixes []struct {
		IPv6Prefix string `json:"ipv6_prefix"`
		Region     string `json:"region"`
		Service    string `json:"service"`
	} `json:"ipv6_prefixes"`
}

// ec2Netblocks returns, per AWS region, its EC2 prefixes, sorted and without duplicates.
func ec2Netblocks(data []byte) (map[string][]netip.Prefix, error) {
	var ranges awsIPRanges
	if err := json.Unmarshal(data, &ranges); err != nil {
		return nil, fmt.Errorf("not AWS ip-ranges.json: %w", err)
	}
	if len(ranges.Prefixes) == 0 && len(ranges.IPv6Prefixes) == 0 {
		return nil, errors.New("not AWS ip-ranges.json: no prefixes")
	}
	out := map[string][]netip.Prefix{}
	add := func(cidr, region, service string) error {
		if service != "EC2" || region == "" {
			return nil
		}
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("prefix %q of %s: %w", cidr, region, err)
		}
		out[region] = append(out[region], p.Masked())
		return nil
	}
	for _, p := range ranges.Prefixes {
		if err := add(p.IPPrefix, p.Region, p.Service); err != nil {
			return nil, err
		}
	}
	for _, p := range ranges.IPv6Prefixes {
		if err := add(p.IPv6Prefix, p.Region, p.Service); err != nil {
			return nil, err
		}
	}
	for region, blocks := range out {
		slices.SortFunc(blocks, func(a, b netip.Prefix) int {
			if c := a.Addr().Compare(b.Addr()); c != 0 {
				return c
			}
			return a.Bits() - b.Bits()
		})
		out[region] = slices.Compact(blocks)
	}
	return out, nil
}

func (a *app) regionImportAWSRangesCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import-aws-ranges FILE",
		Short: "Set each region's netblocks from the EC2 prefixes of the AWS region with the same name",
		Long: `Read AWS's ip-ranges.json (https://ip-ranges.amazonaws.com/ip-ranges.json) and set the
netblocks of every region named like an AWS region (us-east-1) to that region's EC2
prefixes, IPv4 and IPv6. Instances then reach their region's bucket without configuring
$location. The netblocks are replaced, not merged; regions with no EC2 prefixes in the
file are left alone. --dry-run prints the change and writes nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usagef("read %s: %v", args[0], errors.Unwrap(err))
			}
			blocks, err := ec2Netblocks(data)
			if err != nil {
				return usagef("%s: %v", args[0], err)
			}
			ctx := cmd.Context()
			d, err := a.openDB(ctx, true)
			if err != nil {
				return err
			}
			regions, err := d.ListRegions(ctx)
			if err != nil {
				return err
			}
			changed := 0
			for _, r := range regions {
				want, ok := blocks[r.Name]
				if !ok {
					fmt.Fprintf(a.stdout, "%s: no EC2 prefixes in %s; unchanged\n", r.Name, args[0])
					continue
				}
				added, removed := diffPrefixes(r.Netblocks, want)
				if added == 0 && removed == 0 {
					fmt.Fprintf(a.stdout, "%s: %d netblocks, unchanged\n", r.Name, len(want))
					continue
				}
				verb := "set"
				if dryRun {
					verb = "would set"
				}
				fmt.Fprintf(a.stdout, "%s: %s %d netblocks (%d added, %d removed)\n", r.Name, verb, len(want), added, removed)
				changed++
				if dryRun {
					continue
				}
				if _, _, err := d.UpdateRegion(ctx, r.Name, func(m *model.Region) error {
					m.Netblocks = want
					return m.Normalize()
				}); err != nil {
					return err
				}
			}
			if dryRun {
				fmt.Fprintf(a.stdout, "dry run: %d regions would change; nothing written\n", changed)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the change, write nothing")
	return cmd
}

func diffPrefixes(old, want []netip.Prefix) (added, removed int) {
	for _, p := range want {
		if !slices.Contains(old, p) {
			added++
		}
	}
	for _, p := range old {
		if !slices.Contains(want, p) {
			removed++
		}
	}
	return added, removed
}
