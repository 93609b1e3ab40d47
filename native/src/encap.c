/*
 * IP-in-IP segmentation by the kernel (tcx ingress on lvsd's TUN): lvsd writes a TCP GSO packet
 * of a tunnelled connection back into its TUN already encapsulated, the outer IPv4 header
 * (director -> real server, protocol 4) in front of the inner packet, with the inner packet's
 * virtio_net_hdr (gso TCPV4, csum_start at the inner TCP header). The kernel cannot tell from
 * that header that the packet is encapsulated, and would refuse to segment it; this program,
 * run on every packet lvsd writes into the TUN, marks such a packet as IP-in-IP for the GSO
 * layer: it keeps the outer header aside, removes it (bpf_skb_adjust_room, shrinking at the
 * network header, gso_size kept) and puts it back with BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, which
 * sets the inner headers, skb->encapsulation and SKB_GSO_IPXIP4. The kernel then forwards it
 * as a 64 KiB packet and cuts it (or the device does) into IP-in-IP segments, each with its
 * own outer header: ipip's GSO callbacks are built into the IPv4 stack even without the ipip
 * module. Everything else passes untouched: packets that are not GSO or not protocol 4.
 *
 * Assembled by hand like the steering program (steer.c); attached with a tcx link
 * (BPF_LINK_CREATE, BPF_TCX_INGRESS), which the kernel removes when its fd is closed.
 */
#include "encap.h"

#include <linux/pkt_cls.h>
#include <string.h>

#include "bpf-asm.h"

/* Where the outer header waits on the stack while the room is adjusted (20 bytes, 8-aligned). */
#define SAVE (-24)
#define OUTER 20

enum { L_PASS, L_DROP };

static void build(bpf_prog *p) {
  memset(p, 0, sizeof(*p));
  /* r6 = the skb */
  emit(p, MOV64_REG(BPF_REG_6, BPF_REG_1));
  /* Only GSO packets. */
  emit(p, LDX_W(BPF_REG_2, BPF_REG_6, offsetof(struct __sk_buff, gso_size)));
  emit_jump(p, JEQ_IMM(BPF_REG_2, 0, 0), L_PASS);
  /* An IPv4 header without options, protocol 4, within the linear data. */
  emit(p, LDX_W(BPF_REG_2, BPF_REG_6, offsetof(struct __sk_buff, data)));
  emit(p, LDX_W(BPF_REG_3, BPF_REG_6, offsetof(struct __sk_buff, data_end)));
  emit(p, MOV64_REG(BPF_REG_4, BPF_REG_2));
  emit(p, ALU64_IMM(BPF_ADD, BPF_REG_4, OUTER));
  emit_jump(p, JGT_REG(BPF_REG_4, BPF_REG_3, 0), L_PASS);
  emit(p, LDX_B(BPF_REG_4, BPF_REG_2, 0));
  emit_jump(p, JNE_IMM(BPF_REG_4, 0x45, 0), L_PASS);
  emit(p, LDX_B(BPF_REG_4, BPF_REG_2, 9));
  emit_jump(p, JNE_IMM(BPF_REG_4, 4, 0), L_PASS);
  /* bpf_skb_load_bytes(skb, 0, fp + SAVE, 20): keep the outer header. */
  emit_skb_bytes(p, BPF_FUNC_skb_load_bytes, SAVE, OUTER, 0);
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_PASS);
  /* bpf_skb_adjust_room(skb, -20, BPF_ADJ_ROOM_MAC, FIXED_GSO): the outer header out. */
  emit_adjust_room_mac(p, -OUTER, BPF_F_ADJ_ROOM_FIXED_GSO);
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_DROP);
  /* bpf_skb_adjust_room(skb, 20, BPF_ADJ_ROOM_MAC, FIXED_GSO | ENCAP_L3_IPV4): room for it, as an encapsulation. */
  emit_adjust_room_mac(p, OUTER, BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4);
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_DROP);
  /* bpf_skb_store_bytes(skb, 0, fp + SAVE, 20, 0): the outer header back. */
  emit_skb_bytes(p, BPF_FUNC_skb_store_bytes, SAVE, OUTER, 0);
  emit_jump(p, JNE_IMM(BPF_REG_0, 0, 0), L_DROP);
  place(p, L_PASS);
  emit(p, MOV64_IMM(BPF_REG_0, TC_ACT_OK));
  emit(p, EXIT());
  place(p, L_DROP);
  emit(p, MOV64_IMM(BPF_REG_0, TC_ACT_SHOT));
  emit(p, EXIT());
  resolve(p);
}

int lvs_encap_attach(int ifindex, char *log, size_t log_len, const char **failed_call) {
  bpf_prog p;
  build(&p);
  return lvs_bpf_tcx_ingress(&p, "lvs_ipip_gso", ifindex, log, log_len, failed_call);
}
