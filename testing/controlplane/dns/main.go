// Command dns is the e2e node's cluster DNS: it answers A queries for the
// names given with -answer (kubernetes.default.svc.cluster.local, the probe's
// API server) and NXDOMAIN for every other name, over UDP, on one address
// inside the node's network namespace. Nothing is forwarded anywhere.
package main

import (
	"flag"
	"log"
	"net"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

func main() {
	listen := flag.String("listen", "10.254.0.1:53", "UDP address to serve on")
	answers := flag.String("answer", "kubernetes.default.svc.cluster.local=10.0.0.1",
		"comma-separated name=IPv4 pairs")
	flag.Parse()
	known := map[string][4]byte{}
	for _, pair := range strings.Split(*answers, ",") {
		name, ip, ok := strings.Cut(pair, "=")
		addr, err := netip.ParseAddr(ip)
		if !ok || err != nil || !addr.Is4() {
			log.Fatalf("dns: bad -answer %q", pair)
		}
		known[strings.ToLower(strings.TrimSuffix(name, "."))+"."] = addr.As4()
	}
	conn, err := net.ListenPacket("udp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("dns: serving on %s", *listen)
	buf := make([]byte, 512)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			log.Fatal(err)
		}
		if reply, err := answer(buf[:n], known); err == nil {
			_, _ = conn.WriteTo(reply, from)
		}
	}
}

// answer builds the reply to one query: the known name's A record, an empty
// NOERROR for its other types, NXDOMAIN for any other name.
func answer(query []byte, known map[string][4]byte) ([]byte, error) {
	var p dnsmessage.Parser
	header, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	question, err := p.Question()
	if err != nil {
		return nil, err
	}
	ip, found := known[strings.ToLower(question.Name.String())]
	header.Response, header.Authoritative, header.RecursionAvailable = true, true, false
	header.RCode = dnsmessage.RCodeSuccess
	if !found {
		header.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, header)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(question); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if found && question.Type == dnsmessage.TypeA {
		rh := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 30}
		if err := b.AResource(rh, dnsmessage.AResource{A: ip}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}
