// Labels in Chinese and English. Keys are API values (states, kinds, actions) or
// console words; t(key) falls back to the key itself, so a new state shows up untranslated
// rather than blank.

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
    "camera": "摄像头", "sensor": "水位传感器", "dock": "无人机机场",
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
    "camera": "camera", "sensor": "water sensor", "dock": "drone dock",
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
