// struct kvm_segment <-> the VMCS segment fields (vmx_get_segment / vmx_set_segment): access
// rights in the VMCS format are type 3:0, S 4, DPL 6:5, P 7, AVL 12, L 13, D/B 14, G 15,
// unusable 16.

import { VmcsField as F } from "../../arch/vmx/vmcs-fields.ts"
import type { KvmSegment } from "./uapi.ts"

export type SegmentName = "es" | "cs" | "ss" | "ds" | "fs" | "gs" | "ldt" | "tr"

export const segmentFields: Record<SegmentName, { selector: number; base: number; limit: number; ar: number }> = {
  es: { selector: F.GUEST_ES_SELECTOR, base: F.GUEST_ES_BASE, limit: F.GUEST_ES_LIMIT, ar: F.GUEST_ES_AR_BYTES },
  cs: { selector: F.GUEST_CS_SELECTOR, base: F.GUEST_CS_BASE, limit: F.GUEST_CS_LIMIT, ar: F.GUEST_CS_AR_BYTES },
  ss: { selector: F.GUEST_SS_SELECTOR, base: F.GUEST_SS_BASE, limit: F.GUEST_SS_LIMIT, ar: F.GUEST_SS_AR_BYTES },
  ds: { selector: F.GUEST_DS_SELECTOR, base: F.GUEST_DS_BASE, limit: F.GUEST_DS_LIMIT, ar: F.GUEST_DS_AR_BYTES },
  fs: { selector: F.GUEST_FS_SELECTOR, base: F.GUEST_FS_BASE, limit: F.GUEST_FS_LIMIT, ar: F.GUEST_FS_AR_BYTES },
  gs: { selector: F.GUEST_GS_SELECTOR, base: F.GUEST_GS_BASE, limit: F.GUEST_GS_LIMIT, ar: F.GUEST_GS_AR_BYTES },
  ldt: { selector: F.GUEST_LDTR_SELECTOR, base: F.GUEST_LDTR_BASE, limit: F.GUEST_LDTR_LIMIT, ar: F.GUEST_LDTR_AR_BYTES },
  tr: { selector: F.GUEST_TR_SELECTOR, base: F.GUEST_TR_BASE, limit: F.GUEST_TR_LIMIT, ar: F.GUEST_TR_AR_BYTES },
}

export const segmentToAr = (s: KvmSegment): number =>
  s.unusable !== 0 || s.present === 0
    ? 1 << 16
    : (s.type & 15) | ((s.s & 1) << 4) | ((s.dpl & 3) << 5) | ((s.present & 1) << 7) | ((s.avl & 1) << 12) | ((s.l & 1) << 13) | ((s.db & 1) << 14) | ((s.g & 1) << 15)

export const segmentFromVmcs = (selector: number, base: bigint, limit: number, ar: number): KvmSegment => ({
  base,
  limit: limit >>> 0,
  selector: selector & 0xffff,
  type: ar & 15,
  s: (ar >> 4) & 1,
  dpl: (ar >> 5) & 3,
  present: (ar >> 7) & 1,
  avl: (ar >> 12) & 1,
  l: (ar >> 13) & 1,
  db: (ar >> 14) & 1,
  g: (ar >> 15) & 1,
  unusable: (ar >> 16) & 1,
})
