import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type Checker,
  DEFAULT_PERSISTENCE_TIMEOUT,
  type KeepalivedConf,
  parseAddrRange,
  parseKeepalivedConf,
  toIpvsServices,
  type VirtualServer,
} from '../../src/health/keepalived-conf';
import {
  FWD_DROUTE,
  FWD_MASQ,
  FWD_TUNNEL,
  IPPROTO_TCP,
  IPPROTO_UDP,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  TUN_F_CSUM,
  TUN_TYPE_GUE,
} from '../../src/ip-vs';
import { prng } from '../helpers/prng';

/** An in-memory file system: absolute path → contents; directories are implied by the paths. */
function memFs(files: Record<string, string>) {
  const readFile = (p: string): string => {
    const text = files[p];
    if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${p}'`);
    return text;
  };
  const listDir = (dir: string): string[] => {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    const names = new Set<string>();
    for (const p of Object.keys(files)) {
      if (p.startsWith(prefix)) names.add(p.slice(prefix.length).split('/')[0]);
    }
    return [...names];
  };
  return { readFile, listDir };
}

function parse(files: Record<string, string>, main = '/etc/keepalived/keepalived.conf'): KeepalivedConf {
  const fs = memFs(files);
  return parseKeepalivedConf(main, fs.readFile, fs.listDir);
}

function parseOne(text: string): KeepalivedConf {
  return parse({ '/etc/keepalived/keepalived.conf': text });
}

const MAIN = '/etc/keepalived/keepalived.conf';

// A keepalived.conf(5)-style director configuration: VRRP half, a NAT HTTP service with two
// real servers, comments of both kinds, and quoted strings.
const MAN_PAGE_CONF = `! Configuration File for keepalived
global_defs {
   notification_email {
     acassen@firewall.loc
   }
   smtp_server 192.168.200.1
   router_id LVS_DEVEL
}

vrrp_sync_group VG1 {
    group {
        VI_1
    }
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        192.168.200.16
    }
}

virtual_server 192.168.200.16 80 {   # the web VIP
    delay_loop 6
    lvs_sched rr
    lvs_method NAT
    persistence_timeout 50
    persistence_granularity 255.255.255.0
    protocol TCP
    quorum 2
    hysteresis 1
    quorum_up "/usr/local/bin/quorum.sh up"
    quorum_down "/usr/local/bin/quorum.sh down"
    sorry_server 192.168.100.100 8080
    sorry_server_inhibit
    virtualhost www.example.com

    real_server 192.168.201.100 80 {
        weight 2
        notify_up "/usr/local/bin/notify.sh UP 192.168.201.100"
        notify_down "/usr/local/bin/notify.sh DOWN 192.168.201.100"
        uthreshold 1000
        lthreshold 800
        HTTP_GET {
            url {
              path /testurl/test.jsp
              digest 640205b7b0fc66c1ea91c463fac6334d
            }
            url {
              path "/testurl2/test page.jsp"
              status_code 200-299 301
              regex "ok|ready"
              virtualhost api.example.com
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 2
        }
    }
    real_server 192.168.201.101 80 {
        inhibit_on_failure
        TCP_CHECK {
            connect_port 8080
            bindto 192.168.200.2
            bind_port 40000
        }
    }
}
`;

describe('man-page configuration: golden model', () => {
  const conf = parseOne(MAN_PAGE_CONF);

  it('loads with no warnings or errors; VRRP and global blocks are skipped silently', () => {
    expect(conf.errors).toEqual([]);
    expect(conf.warnings).toEqual([]);
    expect(conf.virtualServers).toHaveLength(1);
  });

  it('produces the full model with every value and default', () => {
    const expected: VirtualServer = {
      pos: { file: MAIN, line: 31 },
      target: { kind: 'addr', addr: '192.168.200.16', port: 80 },
      delayLoop: 6,
      sched: 'rr',
      schedFlags: [],
      ops: false,
      method: 'NAT',
      tunnel: null,
      persistenceTimeout: 50,
      persistenceGranularity: '255.255.255.0',
      persistenceEngine: null,
      protocol: 'TCP',
      quorum: 2,
      hysteresis: 1,
      quorumUp: '/usr/local/bin/quorum.sh up',
      quorumDown: '/usr/local/bin/quorum.sh down',
      sorryServer: { addr: '192.168.100.100', port: 8080 },
      sorryServerInhibit: true,
      sorryServerMethod: null,
      inhibitOnFailure: false,
      alpha: false,
      omega: false,
      virtualhost: 'www.example.com',
      haSuspend: false,
      realServers: [
        {
          pos: { file: MAIN, line: 46 },
          addr: '192.168.201.100',
          port: 80,
          weight: 2,
          inhibitOnFailure: false,
          notifyUp: '/usr/local/bin/notify.sh UP 192.168.201.100',
          notifyDown: '/usr/local/bin/notify.sh DOWN 192.168.201.100',
          uThreshold: 1000,
          lThreshold: 800,
          method: null,
          tunnel: null,
          checkers: [
            {
              type: 'HTTP_GET',
              pos: { file: MAIN, line: 52 },
              connectIp: null,
              connectPort: null,
              bindto: null,
              bindPort: null,
              connectTimeout: 3,
              retry: 3,
              delayBeforeRetry: 2,
              delayLoop: 6,
              warmup: 0,
              alpha: false,
              urls: [
                {
                  path: '/testurl/test.jsp',
                  statusCodes: [[200, 299]],
                  digest: '640205b7b0fc66c1ea91c463fac6334d',
                  regex: null,
                  regexNoMatch: false,
                  virtualhost: null,
                },
                {
                  path: '/testurl2/test page.jsp',
                  statusCodes: [
                    [200, 299],
                    [301, 301],
                  ],
                  digest: null,
                  regex: 'ok|ready',
                  regexNoMatch: false,
                  virtualhost: 'api.example.com',
                },
              ],
              virtualhost: 'www.example.com', // the virtual_server's
              httpProtocol: null,
              enableSni: false,
              sniName: null,
            },
          ],
        },
        {
          pos: { file: MAIN, line: 68 },
          addr: '192.168.201.101',
          port: 80,
          weight: 1,
          inhibitOnFailure: true,
          notifyUp: null,
          notifyDown: null,
          uThreshold: 0,
          lThreshold: 0,
          method: null,
          tunnel: null,
          checkers: [
            {
              type: 'TCP_CHECK',
              pos: { file: MAIN, line: 70 },
              connectIp: null,
              connectPort: 8080,
              bindto: '192.168.200.2',
              bindPort: 40000,
              connectTimeout: 5,
              retry: 1,
              delayBeforeRetry: 1,
              delayLoop: 6,
              warmup: 0,
              alpha: false,
            },
          ],
        },
      ],
    };
    expect(conf.virtualServers[0]).toEqual(expected);
  });

  it('converts to one NAT service with persistence and two masq dests', () => {
    const [vs] = conf.virtualServers;
    expect(toIpvsServices(vs!, conf.groups)).toEqual([
      {
        svc: {
          protocol: IPPROTO_TCP,
          addr: '192.168.200.16',
          port: 80,
          fwmark: 0,
          sched: 'rr',
          flags: SVC_F_PERSISTENT,
          timeout: 50,
          netmask: '255.255.255.0',
          pe: '',
        },
        dests: [
          {
            addr: '192.168.201.100',
            port: 80,
            fwd: FWD_MASQ,
            weight: 2,
            uThreshold: 1000,
            lThreshold: 800,
            tunType: 0,
            tunPort: 0,
            tunFlags: 0,
          },
          {
            addr: '192.168.201.101',
            port: 80,
            fwd: FWD_MASQ,
            weight: 1,
            uThreshold: 0,
            lThreshold: 0,
            tunType: 0,
            tunPort: 0,
            tunFlags: 0,
          },
        ],
      },
    ]);
  });
});

// Every checker type on one virtual server, with its specific keys.
const ALL_CHECKERS_CONF = `
virtual_server 10.1.1.1 53 {
    delay_loop 20
    lb_algo wlc
    lb_kind dr
    protocol UDP
    alpha

    real_server 10.2.0.1 53 {
        SSL_GET {
            url {
                path /health
                status_code 204
            }
            virtualhost secure.example.com
            sni_name "tls.example.com"
            http_protocol 1.1
            warmup 5
            no_alpha
        }
        UDP_CHECK {
            connect_port 5353
            payload 00 01 ab
            require_reply cafe
            min_reply_length 2
        }
        DNS_CHECK {
            name example.com
            type a
        }
        MISC_CHECK {
            misc_path "/usr/local/bin/check.sh --host 10.2.0.1"
            misc_timeout 7
            misc_dynamic
            user nobody
        }
        PING_CHECK {
            delay_loop 3
        }
        HTTP_GET {
            url {
                path /
            }
        }
    }
}
`;

describe('checkers', () => {
  const conf = parseOne(ALL_CHECKERS_CONF);
  const checkers = conf.virtualServers[0].realServers[0].checkers;
  const byType = <T extends Checker['type']>(t: T) => checkers.find((c) => c.type === t) as Checker & { type: T };

  it('parses every checker type in order without warnings', () => {
    expect(conf.warnings).toEqual([]);
    expect(conf.errors).toEqual([]);
    expect(checkers.map((c) => c.type)).toEqual([
      'SSL_GET',
      'UDP_CHECK',
      'DNS_CHECK',
      'MISC_CHECK',
      'PING_CHECK',
      'HTTP_GET',
    ]);
  });

  it('SSL_GET keeps url, virtualhost, SNI (sni_name implies enable_sni) and protocol', () => {
    const c = byType('SSL_GET');
    expect(c.urls).toEqual([
      { path: '/health', statusCodes: [[204, 204]], digest: null, regex: null, regexNoMatch: false, virtualhost: null },
    ]);
    expect(c.virtualhost).toBe('secure.example.com');
    expect(c.sniName).toBe('tls.example.com');
    expect(c.enableSni).toBe(true);
    expect(c.httpProtocol).toBe('1.1');
    expect(c.warmup).toBe(5);
    expect(c.alpha).toBe(false); // no_alpha overrides the virtual_server's alpha
    expect(c.delayBeforeRetry).toBe(3);
  });

  it('reads lvs_timeouts from global_defs, in any order, and ignores the rest of global_defs', () => {
    const conf = parseOne(
      'global_defs {\n router_id lb1\n lvs_timeouts udp 60 tcp 7200 bogus\n}\nvirtual_server 10.0.0.1 80 {\n}\n',
    );
    expect(conf.timeouts).toEqual({ tcp: 7200, udp: 60 });
    expect(conf.warnings).toEqual([`${MAIN}:3: unknown lvs_timeouts word 'bogus' ignored`]);
    expect(parseOne('virtual_server 10.0.0.1 80 {\n}\n').timeouts).toBe(null);
    expect(parseOne('global_defs {\n lvs_timeouts tcpfin 0\n}\n').warnings).toEqual([
      `${MAIN}:2: lvs_timeouts tcpfin '0' is invalid (1..2678400); ignored`,
    ]);
  });

  it("HTTP_GET without a virtualhost of its own takes the virtual_server's", () => {
    const conf = parseOne(
      'virtual_server 10.0.0.1 80 {\n virtualhost www.example.com\n real_server 10.0.1.1 80 {\n  HTTP_GET {\n   url {\n    path /\n   }\n  }\n  SSL_GET {\n   virtualhost own.example.com\n   url {\n    path /\n   }\n  }\n }\n}\n',
    );
    expect(conf.warnings).toEqual([]);
    const [http, ssl] = conf.virtualServers[0].realServers[0].checkers;
    expect(http?.type === 'HTTP_GET' && http.virtualhost).toBe('www.example.com');
    expect(ssl?.type === 'SSL_GET' && ssl.virtualhost).toBe('own.example.com');
  });

  it('UDP_CHECK joins hex payload words and keeps reply lengths', () => {
    const c = byType('UDP_CHECK');
    expect(c.payload).toBe('0001ab');
    expect(c.requireReply).toBe('cafe');
    expect(c.minReplyLength).toBe(2);
    expect(c.maxReplyLength).toBe(255);
    expect(c.connectPort).toBe(5353);
    expect(c.alpha).toBe(true); // inherited from the virtual_server's alpha
  });

  it('DNS_CHECK upper-cases the type; retry defaults to 3 and delay_before_retry to delay_loop', () => {
    const c = byType('DNS_CHECK');
    expect(c.name).toBe('example.com');
    expect(c.queryType).toBe('A');
    expect(c.retry).toBe(3);
    expect(c.delayBeforeRetry).toBe(20);
  });

  it('MISC_CHECK keeps the quoted command as one string', () => {
    const c = byType('MISC_CHECK');
    expect(c).toMatchObject({
      miscPath: '/usr/local/bin/check.sh --host 10.2.0.1',
      miscTimeout: 7,
      miscDynamic: true,
      user: 'nobody',
    });
  });

  it('PING_CHECK takes its own delay_loop; the others inherit the virtual_server one', () => {
    expect(byType('PING_CHECK').delayLoop).toBe(3);
    expect(byType('HTTP_GET').delayLoop).toBe(20);
  });

  it('lb_algo/lb_kind are aliases and the method is case-insensitive', () => {
    const vs = conf.virtualServers[0];
    expect(vs.sched).toBe('wlc');
    expect(vs.method).toBe('DR');
    expect(vs.protocol).toBe('UDP');
  });
});

describe('defaults (keepalived.conf.5, REFERENCE.md §3.1)', () => {
  const conf = parseOne(`
virtual_server 10.0.0.1 80 {
    real_server 10.0.1.1 80 {
        TCP_CHECK {
        }
        HTTP_GET {
            url {
                path /
            }
        }
        DNS_CHECK {
        }
        MISC_CHECK {
            misc_path /bin/true
        }
    }
    delay_loop 30      # after the real_server: still applies to its checkers
}
`);
  const vs = conf.virtualServers[0];
  const [tcp, http, dns, misc] = vs.realServers[0].checkers;

  it('virtual_server: wlc, NAT, TCP, no persistence, quorum 1, hysteresis 0', () => {
    expect(conf.warnings).toEqual([]);
    expect(vs).toMatchObject({
      sched: 'wlc',
      method: 'NAT',
      protocol: 'TCP',
      persistenceTimeout: 0,
      quorum: 1,
      hysteresis: 0,
      inhibitOnFailure: false,
      sorryServer: null,
    });
  });

  it('real_server: weight 1, no thresholds, removal on failure', () => {
    expect(vs.realServers[0]).toMatchObject({ weight: 1, uThreshold: 0, lThreshold: 0, inhibitOnFailure: false });
  });

  it('checkers: connect_timeout 5, retry 1 (DNS 3), delay_before_retry 1 / 3 (HTTP) / delay_loop (DNS)', () => {
    expect(tcp).toMatchObject({ connectTimeout: 5, retry: 1, delayBeforeRetry: 1, delayLoop: 30, warmup: 0 });
    expect(http).toMatchObject({ connectTimeout: 5, retry: 1, delayBeforeRetry: 3, delayLoop: 30 });
    expect(dns).toMatchObject({ retry: 3, delayBeforeRetry: 30, name: '.', queryType: 'SOA' });
    expect(misc).toMatchObject({ miscTimeout: 30, miscDynamic: false, user: null });
  });

  it('a url without status_code accepts 200-299', () => {
    expect(http!.type === 'HTTP_GET' && http.urls[0].statusCodes).toEqual([[200, 299]]);
  });

  it('delay_loop defaults to 60 s when not given anywhere', () => {
    const c = parseOne('virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n TCP_CHECK {\n }\n }\n}\n');
    expect(c.virtualServers[0].delayLoop).toBe(60);
    expect(c.virtualServers[0].realServers[0].checkers[0].delayLoop).toBe(60);
  });

  it('persistence_timeout without a value is IPVS default of 360 s', () => {
    const c = parseOne('virtual_server 10.0.0.1 80 {\n persistence_timeout\n}\n');
    expect(c.virtualServers[0].persistenceTimeout).toBe(DEFAULT_PERSISTENCE_TIMEOUT);
    expect(DEFAULT_PERSISTENCE_TIMEOUT).toBe(360);
  });

  it('virtual_server inhibit_on_failure is inherited by its real servers; alpha by its checkers', () => {
    const c = parseOne(`virtual_server 10.0.0.1 80 {
  inhibit_on_failure
  alpha
  real_server 10.0.1.1 80 {
    TCP_CHECK {
    }
  }
}`);
    const rs = c.virtualServers[0].realServers[0];
    expect(rs.inhibitOnFailure).toBe(true);
    expect(rs.checkers[0].alpha).toBe(true);
  });
});

describe('tokenizer: comments and quoted strings', () => {
  it('strips # and ! comments (whole-line and trailing) but keeps them inside quotes', () => {
    const conf = parseOne(`# leading comment
! another
virtual_server 10.0.0.1 80 { # trailing
    quorum_up "/bin/echo #not-a-comment !neither"   ! trailing bang
    real_server 10.0.1.1 80 {
        weight 4 # four
    }
}`);
    expect(conf.warnings).toEqual([]);
    const vs = conf.virtualServers[0];
    expect(vs.quorumUp).toBe('/bin/echo #not-a-comment !neither');
    expect(vs.realServers[0].weight).toBe(4);
  });

  it('accepts braces glued to words and blocks opened on the next line', () => {
    const conf = parseOne('virtual_server 10.0.0.1 80\n{\n real_server 10.0.1.1 80{ weight 7 }\n}\n');
    expect(conf.warnings).toEqual([]);
    expect(conf.virtualServers[0].realServers[0].weight).toBe(7);
  });

  it('reports further keywords on one line (a block written on one line) instead of losing them silently', () => {
    const conf = parseOne(
      'virtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n  HTTP_GET {\n   url { path / status_code 200 }\n   connect_timeout 2 retry 3\n  }\n }\n}\n',
    );
    expect(conf.warnings).toEqual([
      `${MAIN}:4: 'path' takes one value; 'status_code 200' ignored (one keyword per line)`,
      `${MAIN}:5: 'connect_timeout' takes one value; 'retry 3' ignored (one keyword per line)`,
    ]);
    const c = conf.virtualServers[0].realServers[0].checkers[0];
    expect(c.connectTimeout).toBe(2);
    expect(c.type === 'HTTP_GET' && c.urls[0].path).toBe('/');
  });

  it('reports an unterminated quote and keeps the rest of the line as one word', () => {
    const conf = parseOne('virtual_server 10.0.0.1 80 {\n quorum_up "/bin/x arg\n}\n');
    expect(conf.warnings).toEqual([`${MAIN}:2: unterminated quoted string`]);
    expect(conf.virtualServers[0].quorumUp).toBe('/bin/x arg');
  });
});

describe('include', () => {
  it('follows nested includes relative to the including file, with a glob in the last component', () => {
    const conf = parse({
      [MAIN]: 'include conf.d/*.conf\n',
      '/etc/keepalived/conf.d/20-b.conf': 'virtual_server 10.0.0.2 80 {\n include ../rs/b-*.rs\n}\n',
      '/etc/keepalived/conf.d/10-a.conf': 'virtual_server 10.0.0.1 80 {\n}\n',
      '/etc/keepalived/conf.d/.hidden.conf': 'virtual_server 10.9.9.9 80 {\n}\n',
      '/etc/keepalived/conf.d/notes.txt': 'garbage {',
      '/etc/keepalived/rs/b-1.rs': 'real_server 10.0.1.1 80 {\n}\n',
      '/etc/keepalived/rs/b-2.rs': 'real_server 10.0.1.2 80 {\n bogus_key 1\n}\n',
    });
    expect(conf.errors).toEqual([]);
    expect(conf.virtualServers.map((v) => v.target)).toEqual([
      { kind: 'addr', addr: '10.0.0.1', port: 80 },
      { kind: 'addr', addr: '10.0.0.2', port: 80 },
    ]);
    expect(conf.virtualServers[1].realServers.map((r) => r.addr)).toEqual(['10.0.1.1', '10.0.1.2']);
    expect(conf.virtualServers[1].realServers[1].pos).toEqual({ file: '/etc/keepalived/rs/b-2.rs', line: 1 });
    // A warning inside a nested include names that file and line.
    expect(conf.warnings).toEqual(["/etc/keepalived/rs/b-2.rs:2: unknown keyword 'bogus_key' in real_server ignored"]);
  });

  it('takes an absolute include path as is and ? matches one character', () => {
    const conf = parse({
      [MAIN]: 'include /srv/lvs/vs?.conf\n',
      '/srv/lvs/vs1.conf': 'virtual_server 10.0.0.1 80 {\n}\n',
      '/srv/lvs/vs22.conf': 'virtual_server 10.0.0.2 80 {\n}\n',
    });
    expect(conf.virtualServers.map((v) => v.pos.file)).toEqual(['/srv/lvs/vs1.conf']);
  });

  it('reports an include cycle with the chain and loads everything else', () => {
    const conf = parse({
      [MAIN]: 'include a.conf\nvirtual_server 10.0.0.3 80 {\n}\n',
      '/etc/keepalived/a.conf': 'virtual_server 10.0.0.1 80 {\n}\ninclude b.conf\n',
      '/etc/keepalived/b.conf': 'virtual_server 10.0.0.2 80 {\n}\ninclude a.conf\n',
    });
    expect(conf.errors).toEqual([
      '/etc/keepalived/b.conf:3: include cycle: /etc/keepalived/a.conf -> /etc/keepalived/b.conf -> /etc/keepalived/a.conf',
    ]);
    expect(conf.virtualServers.map((v) => v.target.kind === 'addr' && v.target.addr)).toEqual([
      '10.0.0.1',
      '10.0.0.2',
      '10.0.0.3',
    ]);
  });

  it('reports a file including itself', () => {
    const conf = parse({ [MAIN]: 'include keepalived.conf\n' });
    expect(conf.errors).toEqual([`${MAIN}:1: include cycle: ${MAIN} -> ${MAIN}`]);
  });

  it('reports a missing file with the include line, and a glob matching nothing as a warning', () => {
    const conf = parse({ [MAIN]: 'include missing.conf\ninclude none/*.conf\n' });
    expect(conf.errors).toHaveLength(1);
    expect(conf.errors[0]).toMatch(
      /^\/etc\/keepalived\/keepalived.conf:1: cannot read \/etc\/keepalived\/missing.conf/,
    );
    expect(conf.warnings).toEqual([`${MAIN}:2: include none/*.conf: no file matches`]);
    expect(conf.unreadable).toBe(false); // only an included file is missing
  });

  it('reports an unreadable main file instead of throwing', () => {
    const conf = parse({}, '/nope/keepalived.conf');
    expect(conf.virtualServers).toEqual([]);
    expect(conf.unreadable).toBe(true);
    expect(conf.errors[0]).toMatch(/^cannot read \/nope\/keepalived.conf/);
  });

  it('reads a real directory tree with the default file system', () => {
    const conf = parseKeepalivedConf(join(__dirname, '../fixtures/keepalived/keepalived.conf'));
    expect(conf.errors).toEqual([]);
    expect(conf.warnings).toEqual([]);
    const vs = conf.virtualServers[0];
    expect(vs.target).toEqual({ kind: 'group', name: 'WEB' });
    expect(vs.realServers.map((r) => [r.addr, r.weight, r.checkers[0].type])).toEqual([
      ['10.0.0.11', 3, 'HTTP_GET'],
      ['10.0.0.12', 1, 'TCP_CHECK'],
    ]);
    const services = toIpvsServices(vs, conf.groups);
    expect(services.map((s) => `${s.svc.addr}:${s.svc.port}`)).toEqual([
      '192.168.200.16:80',
      '192.168.200.20:80',
      '192.168.200.21:80',
    ]);
    expect(services.every((s) => s.svc.sched === 'wrr' && s.dests.every((d) => d.fwd === FWD_DROUTE))).toBe(true);
  });
});

describe('unknown keywords and blocks', () => {
  const conf = parseOne(`virtual_server 10.0.0.1 80 {
    lvs_sched rr
    frobnicate 12
    smtp_alert {
        real_server 10.9.9.9 80 {
        }
    }
    real_server 10.0.1.1 80 {
        weight 2
        mystery_option yes
        TCP_CHECK {
            connect_timeout 2
            strange_knob 1
        }
        SMTP_CHECK {
            helo_name x
        }
    }
}
some_future_block {
    virtual_server 10.8.8.8 80 {
    }
}
stray_top_keyword
`);

  it('warns with file:line for each unknown keyword and unknown block, in order', () => {
    expect(conf.warnings).toEqual([
      `${MAIN}:3: unknown keyword 'frobnicate' in virtual_server ignored`,
      `${MAIN}:4: unknown block 'smtp_alert' in virtual_server ignored`,
      `${MAIN}:10: unknown keyword 'mystery_option' in real_server ignored`,
      `${MAIN}:13: unknown keyword 'strange_knob' in TCP_CHECK ignored`,
      `${MAIN}:15: SMTP_CHECK is not supported by lvs-ts; checker ignored`,
      `${MAIN}:20: unknown block 'some_future_block' in the top level ignored`,
      `${MAIN}:24: unknown keyword 'stray_top_keyword' in the top level ignored`,
    ]);
    expect(conf.errors).toEqual([]);
  });

  it('skips the content of an unknown block entirely and keeps the known keywords around it', () => {
    expect(conf.virtualServers).toHaveLength(1);
    const vs = conf.virtualServers[0];
    expect(vs.sched).toBe('rr');
    expect(vs.realServers.map((r) => r.addr)).toEqual(['10.0.1.1']);
    expect(vs.realServers[0].weight).toBe(2);
    expect(vs.realServers[0].checkers).toHaveLength(1);
    expect(vs.realServers[0].checkers[0].connectTimeout).toBe(2);
  });

  it('ignores an invalid value with a warning and keeps the default', () => {
    const c = parseOne(
      'virtual_server 10.0.0.1 80 {\n delay_loop soon\n protocol QUIC\n real_server 10.0.1.1 80 {\n weight -3\n }\n}\n',
    );
    expect(c.warnings).toEqual([
      `${MAIN}:2: 'delay_loop' value 'soon' is not a number of seconds; ignored`,
      `${MAIN}:3: unknown protocol 'QUIC'; TCP used`,
      `${MAIN}:5: 'weight' value '-3' is invalid (expected 0..2147483647); ignored`,
    ]);
    expect(c.virtualServers[0].delayLoop).toBe(60);
    expect(c.virtualServers[0].realServers[0].weight).toBe(1);
  });

  it('warns about unbalanced braces and still loads', () => {
    const c = parseOne('}\nvirtual_server 10.0.0.1 80 {\n real_server 10.0.1.1 80 {\n');
    expect(c.warnings).toEqual([`${MAIN}:1: unmatched '}' ignored`]);
    expect(c.errors).toEqual([
      `${MAIN}:3: missing '}' for the block opened here`,
      `${MAIN}:2: missing '}' for the block opened here`,
    ]);
    expect(c.virtualServers[0].realServers).toHaveLength(1);
  });
});

describe('rejected blocks', () => {
  const conf = parseOne(`virtual_server 10.0.0.300 80 {
    real_server 10.0.1.1 80 {
    }
}
virtual_server 10.0.0.2 http {
}
virtual_server 10.0.0.3 80 {
    lvs_sched nosuch
    real_server 10.0.1.1 80 {
    }
}
virtual_server 10.0.0.4 80 {
    real_server 10.0.1.x 80 {
        weight 5
    }
    real_server 10.0.1.2 80 {
    }
}
virtual_server fwmark 0 {
}
virtual_server group MISSING {
}
virtual_server 10.0.0.5 80 {
    HTTP_GET {
    }
    real_server 10.0.1.3 80 {
        HTTP_GET {
            connect_timeout 1
        }
        MISC_CHECK {
        }
        TCP_CHECK {
        }
    }
}
virtual_server 10.0.0.6 80
`);

  it('names the file:line of each rejected block', () => {
    expect(conf.errors).toEqual([
      `${MAIN}:1: virtual_server has an invalid address '10.0.0.300'; block rejected`,
      `${MAIN}:5: virtual_server 10.0.0.2 has an invalid port 'http'; block rejected`,
      `${MAIN}:8: unknown scheduler 'nosuch'; virtual_server at ${MAIN}:7 rejected`,
      `${MAIN}:13: real_server has an invalid address '10.0.1.x'; block rejected`,
      `${MAIN}:19: virtual_server fwmark needs a mark in 1..4294967295; block rejected`,
      `${MAIN}:27: HTTP_GET without a url; checker rejected`,
      `${MAIN}:30: MISC_CHECK without misc_path; checker rejected`,
      `${MAIN}:36: virtual_server without a { } block; rejected`,
      `${MAIN}:21: virtual_server group MISSING: no such virtual_server_group; block rejected`,
    ]);
  });

  it('loads the rest: the good real server beside a bad one, and the good checker beside bad ones', () => {
    expect(conf.virtualServers.map((v) => v.target.kind === 'addr' && v.target.addr)).toEqual(['10.0.0.4', '10.0.0.5']);
    expect(conf.virtualServers[0].realServers.map((r) => r.addr)).toEqual(['10.0.1.2']);
    expect(conf.virtualServers[1].realServers[0].checkers.map((c) => c.type)).toEqual(['TCP_CHECK']);
    // A checker directly in a virtual_server is not a keyword there.
    expect(conf.warnings).toEqual([`${MAIN}:24: unknown block 'HTTP_GET' in virtual_server ignored`]);
  });
});

describe('virtual_server_group', () => {
  const conf = parseOne(`virtual_server group VIPS {
    lvs_sched sh
    sh-port
    flag-1
    mh-fallback
    lvs_method TUN type gue port 6080 csum
    protocol UDP
    ops
    persistence_timeout 600
    real_server 10.0.1.1 53 {
        weight 5
    }
    real_server 10.0.1.2 53 {
        lvs_method NAT
    }
}
virtual_server_group VIPS {
    10.0.0.1 53
    10.0.0.10-12 53
    10.0.1.254-10.0.2.1 5353
    10.0.3.0/30 53
    fwmark 7
    10.0.0.256 53
    10.0.0.20-10 53
    10.0.0.30 dns
}
virtual_server_group VIPS {
}
`);

  it('resolves a group defined after the virtual_server and keeps ranges unexpanded in the model', () => {
    expect(
      conf.groups
        .get('VIPS')!
        .entries.map((e) => (e.kind === 'fwmark' ? `fwmark ${e.fwmark}` : `${e.first}-${e.last}:${e.port}`)),
    ).toEqual([
      '10.0.0.1-10.0.0.1:53',
      '10.0.0.10-10.0.0.12:53',
      '10.0.1.254-10.0.2.1:5353',
      '10.0.3.0-10.0.3.3:53',
      'fwmark 7',
    ]);
  });

  it('rejects bad entries and a duplicate group by file:line', () => {
    expect(conf.errors).toEqual([
      `${MAIN}:23: virtual_server_group VIPS: invalid address or range '10.0.0.256'; entry rejected`,
      `${MAIN}:24: virtual_server_group VIPS: invalid address or range '10.0.0.20-10'; entry rejected`,
      `${MAIN}:25: virtual_server_group VIPS: invalid port 'dns'; entry rejected`,
      `${MAIN}:27: virtual_server_group VIPS defined twice; the later one rejected`,
    ]);
    expect(conf.warnings).toEqual([`${MAIN}:1: scheduler flag 'mh-fallback' does not apply to scheduler sh; ignored`]);
  });

  it('expands every address of every range into its own service with the same dests', () => {
    const services = toIpvsServices(conf.virtualServers[0], conf.groups);
    expect(services.map((s) => (s.svc.fwmark ? `fwmark ${s.svc.fwmark}` : `${s.svc.addr}:${s.svc.port}`))).toEqual([
      '10.0.0.1:53',
      '10.0.0.10:53',
      '10.0.0.11:53',
      '10.0.0.12:53',
      '10.0.1.254:5353',
      '10.0.1.255:5353',
      '10.0.2.0:5353',
      '10.0.2.1:5353',
      '10.0.3.0:53',
      '10.0.3.1:53',
      '10.0.3.2:53',
      '10.0.3.3:53',
      'fwmark 7',
    ]);
    const first = services[0];
    expect(first.svc).toEqual({
      protocol: IPPROTO_UDP,
      addr: '10.0.0.1',
      port: 53,
      fwmark: 0,
      sched: 'sh',
      flags: SVC_F_PERSISTENT | SVC_F_ONEPACKET | SVC_F_SCHED1 | SVC_F_SCHED2,
      timeout: 600,
      netmask: '255.255.255.255',
      pe: '',
    });
    expect(services.at(-1)!.svc).toMatchObject({ protocol: 0, addr: '0.0.0.0', port: 0, fwmark: 7 });
    expect(first.dests).toEqual([
      {
        addr: '10.0.1.1',
        port: 53,
        fwd: FWD_TUNNEL,
        weight: 5,
        uThreshold: 0,
        lThreshold: 0,
        tunType: TUN_TYPE_GUE,
        tunPort: 6080,
        tunFlags: TUN_F_CSUM,
      },
      // The per-real-server lvs_method overrides the virtual_server's.
      {
        addr: '10.0.1.2',
        port: 53,
        fwd: FWD_MASQ,
        weight: 1,
        uThreshold: 0,
        lThreshold: 0,
        tunType: 0,
        tunPort: 0,
        tunFlags: 0,
      },
    ]);
    expect(services.every((s) => s.dests.length === 2)).toBe(true);
  });

  it('rejects a range larger than 65536 addresses', () => {
    const c = parseOne('virtual_server_group BIG {\n 10.0.0.0/8 80\n}\n');
    expect(c.errors).toEqual([
      `${MAIN}:2: virtual_server_group BIG: range '10.0.0.0/8' has 16777216 addresses; entry rejected`,
    ]);
  });
});

describe('parseAddrRange', () => {
  it.each([
    ['10.0.0.1', ['10.0.0.1', '10.0.0.1']],
    ['10.0.0.1-10', ['10.0.0.1', '10.0.0.10']],
    ['10.0.0.5-10.0.1.2', ['10.0.0.5', '10.0.1.2']],
    ['192.168.1.77/28', ['192.168.1.64', '192.168.1.79']],
    ['10.0.0.9/32', ['10.0.0.9', '10.0.0.9']],
    ['10.0.0.10-9', null],
    ['10.0.0.1-256', null],
    ['10.0.0.1/33', null],
    ['10.0.0', null],
    ['host.example.com', null],
  ] as const)('%s -> %j', (text, expected) => {
    expect(parseAddrRange(text)).toEqual(expected);
  });
});

describe('fwmark virtual_server and sched flags', () => {
  it('becomes a protocol-0 fwmark service; sh flags set SCHED1/SCHED2', () => {
    const conf = parseOne(`virtual_server fwmark 42 {
    lvs_sched mh
    mh-port
    persistence_granularity 255.255.0.0
    real_server 10.0.1.1 0 {
        lvs_method DR
    }
}`);
    expect(conf.errors).toEqual([]);
    const [s] = toIpvsServices(conf.virtualServers[0], conf.groups);
    expect(s!.svc).toEqual({
      protocol: 0,
      addr: '0.0.0.0',
      port: 0,
      fwmark: 42,
      sched: 'mh',
      flags: SVC_F_SCHED2,
      timeout: 0,
      netmask: '255.255.0.0',
      pe: '',
    });
    expect(s!.dests[0].fwd).toBe(FWD_DROUTE);
  });
});

describe('hostile input', () => {
  // Words of real configurations, shuffled into nonsense: the parser must report, never throw,
  // and whatever it accepts must convert to services the control plane can take.
  const WORDS = [
    'virtual_server',
    'real_server',
    'virtual_server_group',
    'TCP_CHECK',
    'HTTP_GET',
    'SSL_GET',
    'url',
    'path',
    'status_code',
    'digest',
    'MISC_CHECK',
    'misc_path',
    'misc_dynamic',
    'UDP_CHECK',
    'DNS_CHECK',
    'PING_CHECK',
    'weight',
    'quorum',
    'hysteresis',
    'sorry_server',
    'lvs_sched',
    'lvs_method',
    'TUN',
    'type',
    'gue',
    'port',
    'persistence_timeout',
    'protocol',
    'fwmark',
    'group',
    'include',
    'delay_loop',
    'retry',
    'alpha',
    '{',
    '}',
    '{',
    '}',
    '"',
    '#',
    '!',
    '10.0.0.1',
    '10.0.0.1-9',
    '10.0.0.0/30',
    '80',
    '-1',
    '65536',
    'rr',
    'wlc',
    'nosuch',
    '200-299',
    'x',
    '',
    '\t',
    '\n',
    '\n',
    '\n',
    '\u0000',
    'é',
    '99999999999999999999',
  ];

  it('never throws on 2000 random configurations and converts what it accepts', () => {
    const rnd = prng(9);
    for (let n = 0; n < 2000; n++) {
      const words: string[] = [];
      const len = Math.floor(rnd() * 120);
      for (let i = 0; i < len; i++) words.push(WORDS[Math.floor(rnd() * WORDS.length)]);
      const text = words.join(rnd() < 0.5 ? ' ' : '\n');
      const conf = parse({ [MAIN]: text, '/etc/keepalived/x': text.slice(0, 40) });
      for (const vs of conf.virtualServers) {
        for (const { svc, dests } of toIpvsServices(vs, conf.groups)) {
          expect(typeof svc.sched).toBe('string');
          for (const d of dests) expect(d.weight).toBeGreaterThanOrEqual(0);
        }
      }
    }
  });
});

describe('keepalived.conf: IPv6 virtual servers', () => {
  it('reads an IPv6 virtual_server, its real servers, checkers and prefix granularity', () => {
    const conf = parseOne(`virtual_server 2001:db8::1 80 {
    delay_loop 5
    lb_algo rr
    lb_kind NAT
    persistence_timeout 60
    persistence_granularity 64
    protocol TCP
    real_server 2001:db8:10::1 8080 {
        TCP_CHECK {
            connect_ip 2001:db8:10::1
            connect_timeout 2
        }
    }
    real_server 2001:db8:10::2 8080 {
        HTTP_GET {
            url {
                path /health
                status_code 200
            }
        }
    }
}
`);
    expect(conf.errors).toEqual([]);
    expect(conf.warnings).toEqual([]);
    const [vs] = conf.virtualServers;
    const [svc] = toIpvsServices(vs!, conf.groups);
    expect(svc!.svc).toMatchObject({ protocol: IPPROTO_TCP, addr: '2001:db8::1', port: 80, af: 10, netmask: '64' });
    expect(svc!.dests.map((d) => `${d.addr} ${d.port} ${d.fwd}`)).toEqual([
      `2001:db8:10::1 8080 ${FWD_MASQ}`,
      `2001:db8:10::2 8080 ${FWD_MASQ}`,
    ]);
    expect(vs!.realServers[0]!.checkers[0]).toMatchObject({ type: 'TCP_CHECK', connectIp: '2001:db8:10::1' });
  });

  it('takes an IPv6 virtual server without granularity as a /128 one, and refuses a bad prefix', () => {
    const conf = parseOne(`virtual_server 2001:db8::1 53 {
    protocol UDP
    persistence_granularity 129
    real_server 2001:db8:10::1 53 { }
}
`);
    const [svc] = toIpvsServices(conf.virtualServers[0]!, conf.groups);
    expect(svc!.svc).toMatchObject({ protocol: IPPROTO_UDP, af: 10, netmask: '128' });
    expect(conf.warnings.join('\n')).toMatch(/persistence_granularity/);
  });
});

describe('keepalived.conf: IPv6 ranges in virtual_server_group', () => {
  it('expands the last group of an IPv6 range (hex), and refuses a range running backwards', () => {
    const conf = parseOne(`virtual_server_group web6 {
    2001:db8::9-b 80
    2001:db8::ff 8080
    2001:db8::5-3 80
}
virtual_server group web6 {
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 2001:db8:10::1 80 { }
}
`);
    expect(conf.errors.join('\\n')).toMatch(/invalid address or range '2001:db8::5-3'/);
    const services = toIpvsServices(conf.virtualServers[0]!, conf.groups);
    expect(services.map((s) => `${s.svc.addr} ${s.svc.port} ${s.svc.af} ${s.svc.netmask}`)).toEqual([
      '2001:db8::9 80 10 128',
      '2001:db8::a 80 10 128',
      '2001:db8::b 80 10 128',
      '2001:db8::ff 8080 10 128',
    ]);
  });
});
