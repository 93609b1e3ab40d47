// The VRRP half of a keepalived.conf for the keepalived lvsd runs (cluster/vrrp-conf.ts), and the
// lines keepalived writes to its notify FIFO (cluster/keepalived.ts).

import { describe, expect, it } from 'vitest';
import { parseFifoLine } from '../../src/cluster/keepalived';
import { buildVrrpConf } from '../../src/cluster/vrrp-conf';
import { readKeepalivedTree } from '../../src/health/keepalived-conf';
import { ipToU32 } from '../../src/wire/addr';

const CONF = `
! a kernel-IPVS director's file, unchanged
global_defs {
  router_id dir1
  lvs_sync_daemon sync0 VI_1 id 5 maxlen 1400
  lvs_timeouts tcp 600
  vrrp_notify_fifo /tmp/theirs
  enable_script_security
}
vrrp_script chk_nginx {
  script "/usr/bin/pgrep nginx"
  interval 2
}
vrrp_sync_group G1 {
  group {
    VI_1
    VI_GW
  }
}
vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 51
  priority 150
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass s3cret
  }
  virtual_ipaddress {
    192.168.0.1/24 dev eth0 label eth0:1
  }
  track_script {
    chk_nginx
  }
}
vrrp_instance VI_GW {
  interface eth1
  virtual_router_id 52
  virtual_ipaddress {
    172.16.0.254/24 dev eth1
    2001:db8::1/64
  }
}
virtual_server 192.168.0.1 80 {
  lb_algo rr
  lb_kind NAT
  real_server 172.16.0.1 80 {
  }
}
`;

function build() {
  const { tree } = readKeepalivedTree('/etc/keepalived/keepalived.conf', () => CONF);
  return buildVrrpConf(tree, { pid: 4242, fifo: '/run/lvs/lvsd.sock.vrrp.fifo', killPath: '/bin/kill' });
}

describe('the VRRP half of keepalived.conf', () => {
  it("keeps keepalived's blocks as written, without the LVS half, and adds lvsd's FIFO and alive check", () => {
    const c = build();
    expect(c.text).toBe(
      [
        'global_defs {',
        '  router_id dir1',
        '  enable_script_security',
        '  vrrp_notify_fifo /run/lvs/lvsd.sock.vrrp.fifo',
        '}',
        'vrrp_script lvsd_alive {',
        '  script "/bin/kill -0 4242"',
        '  interval 1',
        '  fall 1',
        '  rise 1',
        '}',
        'vrrp_script chk_nginx {',
        '  script "/usr/bin/pgrep nginx"',
        '  interval 2',
        '}',
        'vrrp_sync_group G1 {',
        '  group {',
        '    VI_1',
        '    VI_GW',
        '  }',
        '}',
        'vrrp_instance VI_1 {',
        '  state MASTER',
        '  interface eth0',
        '  virtual_router_id 51',
        '  priority 150',
        '  advert_int 1',
        '  authentication {',
        '    auth_type PASS',
        '    auth_pass s3cret',
        '  }',
        '  virtual_ipaddress {',
        '    192.168.0.1/24 dev eth0 label eth0:1',
        '  }',
        '  track_script {',
        '    chk_nginx',
        '    lvsd_alive',
        '  }',
        '}',
        'vrrp_instance VI_GW {',
        '  interface eth1',
        '  virtual_router_id 52',
        '  virtual_ipaddress {',
        '    172.16.0.254/24 dev eth1',
        '    2001:db8::1/64',
        '  }',
        '  track_script {',
        '    lvsd_alive',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    expect(c.warnings).toEqual([
      "/etc/keepalived/keepalived.conf:7: vrrp_notify_fifo is lvsd's own (it follows VRRP through it); ignored",
    ]);
  });

  it('reads the instances, their IPv4 addresses, the sync groups and lvs_sync_daemon', () => {
    const c = build();
    expect(c.instances).toEqual([
      { name: 'VI_1', initial: 'MASTER', iface: 'eth0', vrid: 51, priority: 150, vips: [ipToU32('192.168.0.1')] },
      { name: 'VI_GW', initial: 'BACKUP', iface: 'eth1', vrid: 52, priority: 100, vips: [ipToU32('172.16.0.254')] },
    ]);
    expect([...c.groups]).toEqual([['G1', ['VI_1', 'VI_GW']]]);
    expect(c.syncDaemon).toEqual({
      iface: 'sync0',
      instance: 'VI_1',
      syncid: 5,
      maxlen: 1400,
      port: 0,
      ttl: 0,
      group: '',
    });
  });
});

describe("keepalived's notify FIFO", () => {
  it('reads instance and group lines, and nothing else', () => {
    expect(parseFifoLine('INSTANCE "VI_1" MASTER 150', 5)).toEqual({
      kind: 'INSTANCE',
      name: 'VI_1',
      state: 'MASTER',
      priority: 150,
      since: 5,
    });
    expect(parseFifoLine('GROUP "G1" FAULT', 5)).toEqual({
      kind: 'GROUP',
      name: 'G1',
      state: 'FAULT',
      priority: 0,
      since: 5,
    });
    expect(parseFifoLine('VS "x" UP', 5)).toBeNull();
    expect(parseFifoLine('', 5)).toBeNull();
  });
});
