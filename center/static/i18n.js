// Labels in Chinese and English. Keys are API values (states, kinds, actions) or
// console words; t(key) falls back to the key itself, so a new state shows up untranslated
// rather than blank. tests/center/test_console_i18n.py checks that both tables hold every
// key the console uses; machine-written reasons and event data are translated here too.

import { durationParts } from "./dom.js";

const TABLE = {
  zh: {
    "app.title": "城运中心 指挥台",
    "login.title": "登录",
    "login.hint": "粘贴您的访问令牌 (Bearer token)",
    "login.submit": "登录",
    "login.bad": "令牌无效或已过期",
    "logout": "退出",
    "lang": "English",
    "tab.orders": "工单",
    "tab.devices": "设备",
    "tab.kpis": "考核指标",
    "feed.open": "实时",
    "feed.connecting": "重连中",
    "feed.closed": "离线",
    "filters": "筛选",
    "filter.state": "状态",
    "filter.kind": "类别",
    "filter.department": "责任部门",
    "filter.district": "区域",
    "filter.overdue": "仅超期",
    "filter.any": "全部",
    "filter.all_open": "全部未办结",
    "list.empty": "暂无工单",
    "list.more": "加载更多",
    "col.id": "编号",
    "col.kind": "类别",
    "col.state": "状态",
    "col.priority": "优先级",
    "col.place": "位置",
    "col.opened": "发现时间",
    "col.due": "时限",
    "map": "地图",
    "detail.none": "选择一个工单查看详情",
    "detail.summary": "概要",
    "detail.sla": "处置时限",
    "detail.remaining": "剩余",
    "detail.overdue": "已超期",
    "detail.stopped": "计时已停止",
    "detail.evidence": "现场图片",
    "detail.no_evidence": "无图片",
    "detail.depth": "水深曲线",
    "detail.no_depth": "无水深数据",
    "detail.timeline": "处置过程",
    "detail.actions": "操作",
    "detail.no_actions": "当前无可执行操作",
    "detail.alerts": "告警",
    "detail.attachments": "处置照片",
    "detail.close": "关闭",
    "detail.changed": "该工单刚被更新; 提交时将校验是否仍可操作",
    "field.department": "派遣部门",
    "field.grounds": "退单理由",
    "field.duration": "延期时长 (如 2h, 1d)",
    "field.note": "处置说明",
    "field.photo": "照片 (可选)",
    "field.passed": "核查通过",
    "field.reason": "原因",
    "field.level": "提级层级",
    "submit": "提交",
    "cancel": "取消",
    "done": "已完成",
    "devices.title": "感知设备",
    "devices.id": "设备",
    "devices.kind": "类型",
    "devices.place": "位置",
    "devices.state": "状态",
    "devices.last_seen": "最后在线",
    "devices.fps": "帧率",
    "devices.latency": "时延 (ms)",
    "devices.empty": "暂无设备",
    "kpis.title": "考核指标",
    "kpis.open": "未办结",
    "kpis.overdue": "超期",
    "kpis.escalated": "已提级",
    "kpis.by": "分组",
    "kpis.by.department": "按部门",
    "kpis.by.kind": "按类别",
    "kpis.by.day": "按日",
    "kpis.by_state": "按状态",
    "error.vendor": "前端库缺失: 请运行 scripts/vendor_console.sh",
    "error.unavailable": "暂不可用",
    "camera": "摄像头", "sensor": "水位传感器", "dock": "无人机机场", "gateway": "边缘网关",
    "online": "在线", "offline": "离线", "unknown": "未知",
    "community": "社区", "street": "街道", "district": "区",
    "p1": "特急", "p2": "紧急", "p3": "一般", "p4": "低",
    // states
    reported: "已上报", filed: "已立案", dispatched: "已派遣", signed: "已签收",
    in_progress: "处置中", resolved: "已处置", verified: "已核查", closed: "已结案",
    returned: "已退单", rework: "返工", extended: "已延期", false_positive: "误报",
    reopened: "复发",
    // kinds
    waterlogging: "道路积水", street_vending: "占道经营", illegal_parking: "违法停车",
    smoke: "烟火", device_fault: "设备故障",
    // actions (and the events they record)
    "action.file": "立案", "action.dispatch": "派遣", "action.sign": "签收",
    "action.return": "退单", "action.extend": "延期", "action.start": "开始处置",
    "action.resolve": "处置完成", "action.verify": "核查", "action.close": "结案",
    "action.mark_false_positive": "标记误报", "action.reopen": "重新打开",
    "action.escalate": "提级 (吹哨)",
    "kpis.totals": "合计",
    "kpi.total": "总数", "kpi.dispatched": "派遣", "kpi.responded": "响应", "kpi.handled": "处置",
    "kpi.on_time": "按期", "kpi.closed": "结案", "kpi.false_positive": "误报",
    "kpi.verified": "核查通过", "kpi.rework": "返工", "kpi.response_rate": "响应率",
    "kpi.handling_rate": "处置率", "kpi.satisfaction_rate": "满意率",
    "kpi.closure_rate": "结案率", "kpi.on_time_rate": "按期处置率",
    // events that are not a state's name
    "event.started": "开始处置", "event.escalated": "提级", "event.recurred": "复发",
    merged: "已并单", "event.merged": "并入他单", "event.absorbed": "并入重复工单",
    "kpi.recurrences": "复发", "kpi.merged": "并单",
    // triage, list, map
    "col.number": "工单号", "col.left": "剩余时限", "col.prio_short": "优先级",
    "list.sort_hint": "按紧急程度排序: 超期 → 优先级 → 剩余时间",
    "list.export": "导出 CSV", "list.new": "新建工单 (12345)",
    "filter.escalated": "仅已提级",
    "left.overdue": "超期", "left.left": "剩余", "left.stopped": "已停止",
    "unit.d": "天", "unit.h": "小时", "unit.m": "分", "unit.s": "秒",
    "legend.title": "图例", "legend.kinds": "类别", "legend.states": "状态",
    "legend.waiting": "待派遣", "legend.with_unit": "已派遣/签收", "legend.handling": "处置中",
    "legend.done": "已处置", "legend.overdue": "红圈: 超期", "legend.cluster": "数字: 聚合的工单",
    "legend.device": "感知设备",
    "map.pick": "在地图上点选位置", "map.picking": "请在地图上点击事发位置",
    "role.viewer": "只读", "role.operator": "值班员", "role.admin": "管理员",
    "alerts.on": "P1 提醒: 开", "alerts.off": "P1 提醒: 关",
    "alerts.denied": "浏览器拒绝了桌面通知; 仅声音提醒",
    "alerts.title": "新的特急工单", "alerts.toast": "新的特急工单",
    "kpis.tile_hint": "点击筛选列表",
    // detail
    "devices.ago": "{span}前", "detail.escalated_to": "已提级至",
    "detail.number": "工单号", "detail.machine_id": "系统编号", "detail.devices": "感知设备",
    "detail.device_link": "查看设备", "detail.not_registered": "未登记",
    "detail.clips": "现场视频", "detail.max_conf": "最高置信度",
    "detail.report": "来电/举报内容", "detail.contact": "联系方式", "detail.via": "来源",
    "detail.routed": "派单部门", "detail.video_unsupported": "浏览器无法播放该视频的编码", "detail.download": "下载",
    "evidence.snapshot": "抓拍", "evidence.crop": "特写", "evidence.clip": "视频", "evidence.frame": "原图",
    "evidence.series": "数据曲线",
    "via.machine": "机器上报", "via.hotline": "12345 热线", "via.citizen": "群众举报",
    "field.reason_required": "派往非默认部门须说明原因",
    "field.routed_suffix": "(默认)",
    // timeline: events, reasons and their data
    "event.complaint": "群众投诉 (并入本单)",
    "reason.auto_filed": "机器上报, 自动立案",
    "reason.sla_elapsed": "已过处置时限的 {pct}",
    "reason.recurrence": "复发, 前序工单 {id}",
    "reason.merged": "同一问题 (迟到数据), 已并单",
    "data.kind": "类别", "data.category": "分类代码", "data.department": "部门",
    "data.routed_department": "默认部门", "data.priority": "优先级", "data.sla_tier": "时限档",
    "data.due_at": "时限", "data.alerts": "告警数", "data.recurrence_of": "前序工单",
    "data.level": "层级", "data.unit": "责任单元", "data.reported_via": "来源",
    "data.distance_m": "距离", "data.contact": "联系方式", "data.photo_id": "照片",
    "data.passed": "核查通过", "data.previous_due_at": "原时限", "data.unit_level": "单元层级",
    "data.reopen_count": "重开次数", "data.work_order": "并入的工单", "data.into": "并入",
    "data.yes": "是", "data.no": "否",
    "tier.simple": "简易 (1 天)", "tier.general": "一般 (3 天)", "tier.hard": "疑难 (7 天)",
    "tier.waterlogging": "积水 (30 分钟)", "tier.smoke": "烟火 (10 分钟)",
    "box.dwell": "停留 {n} 秒", "box.persistence": "持续检出", "box.class": "目标",
    "cls.car": "车辆", "cls.truck": "货车", "cls.bus": "公交车", "cls.person": "行人",
    "cls.smoke": "烟雾", "cls.fire": "明火", "cls.cart": "推车", "cls.vendor_cart": "摊贩推车",
    "cls.stall": "摊位", "cls.motorcycle": "摩托车", "cls.bicycle": "自行车",
    // hotline form
    "hotline.title": "新建工单: 12345 热线 / 群众举报", "hotline.via": "来源",
    "hotline.kind": "类别", "hotline.description": "反映内容", "hotline.contact": "联系方式 (可选)",
    "hotline.place": "所在社区", "hotline.lat": "纬度", "hotline.lon": "经度",
    "hotline.priority": "优先级", "hotline.priority_auto": "按类别默认",
    "hotline.photo": "现场照片 (可选)", "hotline.created": "已新建工单 {number}",
    "hotline.joined": "该位置已有同类未办结工单 {number}, 已作为投诉并入",
    // KPIs
    "kpis.since": "开始日期", "kpis.until": "结束日期", "kpis.export": "导出 CSV",
    "kpis.chart": "每日工单", "kpis.chart_total": "新增", "kpis.chart_closed": "结案",
    "kpis.apply": "查询",
    "csv.failed": "导出失败",
  },
  en: {
    "app.title": "City Operations Center",
    "login.title": "Sign in",
    "login.hint": "Paste your access token (bearer token)",
    "login.submit": "Sign in",
    "login.bad": "The token is unknown or expired",
    "logout": "Sign out",
    "lang": "中文",
    "tab.orders": "Work orders",
    "tab.devices": "Devices",
    "tab.kpis": "KPIs",
    "feed.open": "live",
    "feed.connecting": "reconnecting",
    "feed.closed": "offline",
    "filters": "Filters",
    "filter.state": "State",
    "filter.kind": "Kind",
    "filter.department": "Department",
    "filter.district": "District",
    "filter.overdue": "Overdue only",
    "filter.any": "Any",
    "filter.all_open": "All open",
    "list.empty": "No work orders",
    "list.more": "Load more",
    "col.id": "ID",
    "col.kind": "Kind",
    "col.state": "State",
    "col.priority": "Priority",
    "col.place": "Place",
    "col.opened": "Opened",
    "col.due": "Due",
    "map": "Map",
    "detail.none": "Select a work order to see its details",
    "detail.summary": "Summary",
    "detail.sla": "Time limit",
    "detail.remaining": "left",
    "detail.overdue": "overdue",
    "detail.stopped": "clock stopped",
    "detail.evidence": "Snapshots",
    "detail.no_evidence": "No images",
    "detail.depth": "Water depth",
    "detail.no_depth": "No depth readings",
    "detail.timeline": "Timeline",
    "detail.actions": "Actions",
    "detail.no_actions": "No actions available",
    "detail.alerts": "Alerts",
    "detail.attachments": "Photos",
    "detail.close": "Close",
    "detail.changed": "This order just changed; submitting checks that the action still applies",
    "field.department": "Department",
    "field.grounds": "Grounds for return",
    "field.duration": "Extend by (e.g. 2h, 1d)",
    "field.note": "Note",
    "field.photo": "Photo (optional)",
    "field.passed": "Verification passed",
    "field.reason": "Reason",
    "field.level": "Level",
    "submit": "Submit",
    "cancel": "Cancel",
    "done": "Done",
    "devices.title": "Devices",
    "devices.id": "Device",
    "devices.kind": "Kind",
    "devices.place": "Place",
    "devices.state": "State",
    "devices.last_seen": "Last seen",
    "devices.fps": "fps",
    "devices.latency": "Latency (ms)",
    "devices.empty": "No devices",
    "kpis.title": "KPIs",
    "kpis.open": "Open",
    "kpis.overdue": "Overdue",
    "kpis.escalated": "Escalated",
    "kpis.by": "Group by",
    "kpis.by.department": "Department",
    "kpis.by.kind": "Kind",
    "kpis.by.day": "Day",
    "kpis.by_state": "By state",
    "error.vendor": "Front-end libraries missing: run scripts/vendor_console.sh",
    "error.unavailable": "not available",
    "camera": "camera", "sensor": "water sensor", "dock": "drone dock", "gateway": "edge gateway",
    "online": "online", "offline": "offline", "unknown": "unknown",
    "community": "community", "street": "street", "district": "district",
    "p1": "P1 critical", "p2": "P2 urgent", "p3": "P3 normal", "p4": "P4 low",
    reported: "reported", filed: "filed", dispatched: "dispatched", signed: "signed",
    in_progress: "in progress", resolved: "resolved", verified: "verified", closed: "closed",
    returned: "returned", rework: "rework", extended: "extended",
    false_positive: "false positive", reopened: "reopened",
    waterlogging: "waterlogging", street_vending: "street vending",
    illegal_parking: "illegal parking", smoke: "smoke / fire", device_fault: "device fault",
    "action.file": "File", "action.dispatch": "Dispatch", "action.sign": "Sign for",
    "action.return": "Return", "action.extend": "Extend", "action.start": "Start",
    "action.resolve": "Resolve", "action.verify": "Verify", "action.close": "Close",
    "action.mark_false_positive": "False positive", "action.reopen": "Reopen",
    "action.escalate": "Escalate",
    "kpis.totals": "All",
    "kpi.on_time": "on time", "kpi.false_positive": "false positive",
    "kpi.response_rate": "response rate", "kpi.handling_rate": "handling rate",
    "kpi.satisfaction_rate": "satisfaction rate", "kpi.closure_rate": "closure rate",
    "kpi.on_time_rate": "on-time rate",
    "event.started": "started", "event.escalated": "escalated", "event.recurred": "recurred",
    merged: "merged", "event.merged": "merged into another order",
    "event.absorbed": "absorbed a duplicate order",
    "kpi.recurrences": "recurrences", "kpi.merged": "merged",
    "col.number": "Number", "col.left": "Time left", "col.prio_short": "Prio",
    "list.sort_hint": "Most urgent first: overdue → priority → time left",
    "list.export": "Export CSV", "list.new": "New order (12345)",
    "filter.escalated": "Escalated only",
    "left.overdue": "overdue", "left.left": "left", "left.stopped": "stopped",
    "unit.d": "d", "unit.h": "h", "unit.m": "m", "unit.s": "s",
    "legend.title": "Legend", "legend.kinds": "Kinds", "legend.states": "States",
    "legend.waiting": "to dispatch", "legend.with_unit": "dispatched / signed",
    "legend.handling": "being handled", "legend.done": "resolved",
    "legend.overdue": "red ring: overdue", "legend.cluster": "number: orders grouped",
    "legend.device": "device",
    "map.pick": "Pick on the map", "map.picking": "Click the spot on the map",
    "role.viewer": "viewer", "role.operator": "operator", "role.admin": "admin",
    "alerts.on": "P1 alerts: on", "alerts.off": "P1 alerts: off",
    "alerts.denied": "The browser refused desktop notifications; sound only",
    "alerts.title": "New P1 work order", "alerts.toast": "New P1 work order",
    "kpis.tile_hint": "Click to filter the list",
    "devices.ago": "{span} ago", "detail.escalated_to": "Escalated to",
    "detail.number": "Number", "detail.machine_id": "System id", "detail.devices": "Devices",
    "detail.device_link": "Show device", "detail.not_registered": "not in the registry",
    "detail.clips": "Video clips", "detail.max_conf": "max confidence",
    "detail.report": "Caller's report", "detail.contact": "Contact", "detail.via": "Reported via",
    "detail.routed": "Routed to", "detail.video_unsupported": "This browser cannot play the clip's codec",
    "detail.download": "download",
    "evidence.snapshot": "snapshot", "evidence.crop": "crop", "evidence.clip": "clip", "evidence.frame": "clean frame",
    "evidence.series": "series",
    "via.machine": "machine report", "via.hotline": "12345 hotline", "via.citizen": "citizen report",
    "field.reason_required": "A department other than the routed one needs a reason",
    "field.routed_suffix": "(routed)",
    "event.complaint": "citizen complaint (joined)",
    "reason.auto_filed": "machine report filed automatically",
    "reason.sla_elapsed": "{pct} of the SLA time limit elapsed",
    "reason.recurrence": "recurrence of {id}",
    "reason.merged": "the same problem (late data): merged",
    "data.kind": "kind", "data.category": "category", "data.department": "department",
    "data.routed_department": "routed to", "data.priority": "priority", "data.sla_tier": "SLA tier",
    "data.due_at": "due", "data.alerts": "alerts", "data.recurrence_of": "recurrence of",
    "data.level": "level", "data.unit": "unit", "data.reported_via": "via",
    "data.distance_m": "distance", "data.contact": "contact", "data.photo_id": "photo",
    "data.passed": "passed", "data.previous_due_at": "previous due", "data.unit_level": "unit level",
    "data.reopen_count": "reopened", "data.work_order": "absorbed order", "data.into": "into",
    "data.yes": "yes", "data.no": "no",
    "tier.simple": "simple (1 day)", "tier.general": "general (3 days)", "tier.hard": "hard (7 days)",
    "tier.waterlogging": "waterlogging (30 min)", "tier.smoke": "smoke (10 min)",
    "box.dwell": "dwell {n} s", "box.persistence": "seen persistently", "box.class": "object",
    "cls.car": "car", "cls.truck": "truck", "cls.bus": "bus", "cls.person": "person",
    "cls.smoke": "smoke", "cls.fire": "fire", "cls.cart": "cart", "cls.vendor_cart": "vendor cart",
    "cls.stall": "stall", "cls.motorcycle": "motorcycle", "cls.bicycle": "bicycle",
    "hotline.title": "New order: 12345 hotline / citizen report", "hotline.via": "Reported via",
    "hotline.kind": "Kind", "hotline.description": "What is reported",
    "hotline.contact": "Contact (optional)", "hotline.place": "Community",
    "hotline.lat": "Latitude", "hotline.lon": "Longitude", "hotline.priority": "Priority",
    "hotline.priority_auto": "by kind", "hotline.photo": "Photo (optional)",
    "hotline.created": "Opened work order {number}",
    "hotline.joined": "An open order of this kind is at this spot: joined {number} as a complaint",
    "kpis.since": "From", "kpis.until": "To", "kpis.export": "Export CSV",
    "kpis.chart": "Orders per day", "kpis.chart_total": "opened", "kpis.chart_closed": "closed",
    "kpis.apply": "Show",
    "csv.failed": "Export failed",
    "kpi.total": "total", "kpi.dispatched": "dispatched", "kpi.responded": "responded",
    "kpi.handled": "handled", "kpi.closed": "closed", "kpi.verified": "verified",
    "kpi.rework": "rework",
  },
};

export const STATES = [
  "reported", "filed", "dispatched", "signed", "in_progress", "returned", "rework",
  "extended", "reopened", "resolved", "verified", "closed", "false_positive", "merged",
];
export const KINDS = ["waterlogging", "street_vending", "illegal_parking", "smoke", "device_fault"];

let lang = localStorage.getItem("citywatch.lang") || "zh";
const listeners = [];

export function t(key) {
  return TABLE[lang][key] ?? TABLE.en[key] ?? key;
}

/** The label of a timeline event: its own entry, else the state it is named after. */
export function eventLabel(event) {
  const own = `event.${event}`;
  return TABLE[lang][own] ?? TABLE.en[own] ?? t(event);
}

export function currentLang() {
  return lang;
}

export function toggleLang() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("citywatch.lang", lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  applyStatic();
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) {
  listeners.push(fn);
}

/** Fill every element marked data-i18n (static text in index.html). */
export function applyStatic(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}

/** "已过处置时限的 {pct}" with {pct} → 80%: a template's placeholders filled in. */
export function fill(key, vars = {}) {
  return t(key).replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

let categoryNames = new Map(); // kind → the site's category name (Chinese, from config)

/** Register the site's categories, so that every place names a kind the same way. */
export function setCategories(categories) {
  categoryNames = new Map((categories || []).map((c) => [c.kind, c.name]));
}

/** A kind's name, the same in the list, the filter, the map and the forms: the site's
 * category name in Chinese (what the 12345 center calls it), the English word otherwise. */
export function kindLabel(kind) {
  if (lang === "zh" && categoryNames.has(kind)) return categoryNames.get(kind);
  return t(kind);
}

export function roleLabel(role) {
  return t(`role.${role}`);
}

/** 3725 s → "1小时02分" / "1h 02m"; always positive (the caller says overdue or left). */
export function fmtSpan(seconds) {
  return durationParts(seconds)
    .map(([n, u], i) => `${i ? String(n).padStart(2, "0") : n}${t(`unit.${u}`)}`)
    .join(lang === "zh" ? "" : " ");
}

/** Reasons the machines write (in English, in the database) in the reader's language;
 * reasons people typed are shown as they typed them. */
const MACHINE_REASONS = [
  [/^machine report filed automatically$/, () => t("reason.auto_filed")],
  [/^([\d.]+) of the SLA time limit elapsed$/,
    (m) => fill("reason.sla_elapsed", { pct: `${Math.round(Number(m[1]) * 100)}%` })],
  [/^recurrence \(复发\) of (.+)$/, (m) => fill("reason.recurrence", { id: m[1] })],
  [/^the same problem \(late data\): merged$/, () => t("reason.merged")],
];

export function reasonText(reason) {
  for (const [pattern, render] of MACHINE_REASONS) {
    const m = pattern.exec(reason);
    if (m) return render(m);
  }
  return reason;
}

/** One `key: value` of an event's data, both in the reader's language. ctx: {deptName,
 * placeName, fmtTime}. */
export function dataText(key, value, ctx) {
  const label = t(`data.${key}`) === `data.${key}` ? key.replaceAll("_", " ") : t(`data.${key}`);
  let shown = value;
  if (key === "kind") shown = kindLabel(value);
  else if (key === "department" || key === "routed_department") shown = ctx.deptName(value);
  else if (key === "priority") shown = t(`p${value}`);
  else if (key === "sla_tier") shown = t(`tier.${value}`) === `tier.${value}` ? value : t(`tier.${value}`);
  else if (key === "level" || key === "unit_level") shown = t(value);
  else if (key === "unit") shown = ctx.placeName ? ctx.placeName(value) : value;
  else if (key === "reported_via") shown = t(`via.${value}`);
  else if (key === "distance_m") shown = `${value} m`;
  else if (typeof value === "boolean") shown = t(value ? "data.yes" : "data.no");
  else if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value)) shown = ctx.fmtTime(value);
  else if (value && typeof value === "object") shown = JSON.stringify(value);
  return `${label}: ${shown}`;
}

/** What a detection box stood for, e.g. "车辆 0.91 · 停留 25 秒" (the gateway burns an
 * English label into the image; this is the reader's-language caption under it). */
export function boxLabel(attributes, confidence) {
  const a = attributes || {};
  const parts = [];
  if (a.class) {
    const own = `cls.${a.class}`;
    parts.push(`${t(own) === own ? a.class : t(own)}${confidence != null ? ` ${Number(confidence).toFixed(2)}` : ""}`);
  }
  if (a.reason === "persistence") parts.push(t("box.persistence"));
  else if (a.dwell_s != null) parts.push(fill("box.dwell", { n: Math.round(Number(a.dwell_s)) }));
  return parts.join(" · ");
}
