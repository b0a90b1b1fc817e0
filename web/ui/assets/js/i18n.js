// Texts of every page in Vietnamese (the default) and English, and the language switch.
// Static text in the HTML carries data-i18n="key" (its Vietnamese text is also written
// in the HTML so the first paint needs no script); attributes carry
// data-i18n-attr="aria-label:key;placeholder:key".

const vi = {
  'lang.switch': 'English',
  'lang.switchLabel': 'Switch the pages to English',
  'nav.lobby': 'Trang chủ',
  'nav.replays': 'Thư viện bài giảng',
  'nav.skip': 'Bỏ qua, đến nội dung chính',

  'err.title': 'Không mở được trang này',
  'err.noToken': 'Đường link này thiếu mã truy cập. Hãy mở đúng đường link trong thư mời (đường link có đoạn “?token=…”).',
  'err.badToken': 'Mã truy cập không hợp lệ hoặc đã hết hạn. Hãy xin ban tổ chức một đường link mới.',
  'err.forbidden': 'Đường link của bạn không dùng được cho trang này hoặc cho buổi học này.',
  'err.wrongRole': 'Đường link của bạn dành cho {role}, không phải cho trang này. Hãy mở đúng đường link trong thư mời.',
  'err.notFound': 'Không tìm thấy buổi học này. Có thể buổi học đã bị xoá.',
  'err.network': 'Không kết nối được với máy chủ. Hãy kiểm tra mạng rồi tải lại trang.',
  'err.server': 'Máy chủ đang gặp lỗi (mã {status}). Hãy thử lại sau ít phút.',
  'err.back': 'Về trang chủ',
  'err.reload': 'Tải lại trang',
  'err.pageNotFound': 'Không có trang nào ở địa chỉ này.',
  'err.browser': 'Trình duyệt này quá cũ để xem bài giảng trực tiếp. Hãy dùng Chrome, Edge, Firefox hoặc Safari bản mới.',
  'err.insecure': 'Trình duyệt chỉ cho dùng camera và micro khi trang được mở qua kết nối an toàn HTTPS (địa chỉ bắt đầu bằng https://). Trang này đang mở ở {origin}. Hãy mở đường link bắt đầu bằng https://, hoặc nhờ người quản trị bật HTTPS cho máy chủ.',

  'role.trainer': 'giảng viên',
  'role.site': 'điểm cầu (lớp học)',
  'role.viewer': 'người xem',
  'role.learner': 'học viên xem lại',

  'live.on': 'ĐANG PHÁT',
  'live.off': 'CHƯA PHÁT',
  'live.paused': 'MẤT KẾT NỐI',

  'q.label': 'Chất lượng',
  'q.good': 'Tốt',
  'q.fair': 'Trung bình',
  'q.poor': 'Kém',
  'q.none': 'Chưa có',
  'q.details': '{kbps} kbit/s · mất gói {loss}% · trễ {rtt} ms',
  'stats.bitrate': 'Tốc độ',
  'stats.loss': 'Mất gói',
  'stats.rtt': 'Độ trễ (khứ hồi)',
  'stats.fps': 'Khung hình/giây',

  'studio.heading': 'Phòng phát của giảng viên',
  'studio.camera': 'Camera',
  'studio.mic': 'Micro',
  'studio.preview': 'Hình của bạn',
  'studio.slidesPreview': 'Màn hình đang chia sẻ',
  'studio.goLive': 'Bắt đầu phát',
  'studio.stop': 'Dừng phát',
  'studio.connecting': 'Đang kết nối…',
  'studio.share': 'Chia sẻ màn hình (slide)',
  'studio.stopShare': 'Dừng chia sẻ màn hình',
  'studio.noShare': 'Chưa chia sẻ màn hình. Bấm “Chia sẻ màn hình” để các lớp thấy slide bài giảng.',
  'studio.elapsed': 'Thời gian phát',
  'studio.health': 'Đường truyền',
  'studio.viewers': 'Số kết nối đang xem',
  'studio.classrooms': 'Các điểm cầu',
  'studio.noClassrooms': 'Các điểm cầu sẽ hiện ở đây khi giơ tay hoặc phát biểu.',
  'studio.hands': 'Giơ tay (theo thứ tự)',
  'studio.noHands': 'Chưa có điểm cầu nào giơ tay.',
  'studio.give': 'Cho phát biểu',
  'studio.giveLabel': 'Cho {name} phát biểu',
  'studio.takeBack': 'Kết thúc phát biểu',
  'studio.takeBackLabel': 'Kết thúc lượt phát biểu của {name}',
  'studio.speakers': 'Đang phát biểu',
  'studio.noSpeakers': 'Chưa có điểm cầu nào phát biểu.',
  'studio.waitingSpeaker': 'Đang chờ {name} bật camera và micro…',
  'studio.raisedAt': 'giơ tay lúc {time}',
  'studio.noDevices': 'Không dùng được camera hoặc micro ({detail}). Hãy cho phép trình duyệt dùng camera và micro, rồi bấm “Thử lại”.',
  'studio.retry': 'Thử lại',
  'studio.publishFailed': 'Không phát được: {detail}',
  'studio.shareFailed': 'Không chia sẻ được màn hình ({detail}).',
  'studio.liveNotice': 'Bạn đang phát trực tiếp tới các điểm cầu.',
  'studio.offNotice': 'Chọn camera và micro, kiểm tra hình bên dưới, rồi bấm “Bắt đầu phát”.',
  'studio.lost': 'Mất kết nối tới máy chủ — đang phát lại…',
  'studio.confirmStop': 'Dừng phát bài giảng?',
  'studio.devices': 'Đầu thu RTSP (hội trường)',
  'studio.devicesIntro': 'Đầu thu hình, máy chiếu hay VLC ở hội trường nhận bài giảng qua RTSP với một mã ngắn thay cho đường link mời.',
  'studio.deviceName': 'Tên thiết bị',
  'studio.deviceRole': 'Thiết bị là',
  'studio.deviceSite': 'Điểm cầu (giơ tay được)',
  'studio.deviceViewer': 'Chỉ xem',
  'studio.deviceTTL': 'Hiệu lực',
  'studio.ttlDay': '1 ngày',
  'studio.ttlWeek': '7 ngày',
  'studio.ttlMonth': '30 ngày',
  'studio.deviceMint': 'Tạo mã cho thiết bị',
  'studio.deviceCode': 'Mã thiết bị (mật khẩu RTSP)',
  'studio.deviceURL': 'Địa chỉ RTSP',
  'studio.deviceOnce': 'Mã chỉ hiện một lần: hãy nhập vào thiết bị ngay. Mất mã thì thu hồi và tạo mã mới.',
  'studio.deviceUntil': '{role}, đến {time}',
  'studio.deviceRevoke': 'Thu hồi',
  'studio.deviceRevokeLabel': 'Thu hồi mã của {name}',
  'studio.deviceFailed': 'Không tạo được mã: {detail}',

  'room.heading': 'Lớp học trực tuyến',
  'room.waiting': 'Bài giảng chưa bắt đầu. Hình và tiếng sẽ tự xuất hiện khi giảng viên bắt đầu phát.',
  'room.ended': 'Bài giảng đã kết thúc. Cảm ơn các bạn đã theo dõi.',
  'room.watchReplay': 'Xem lại bài giảng',
  'room.connecting': 'Đang kết nối tới bài giảng…',
  'room.reconnecting': 'Mất kết nối mạng — đang tự kết nối lại…',
  'room.paused': 'Giảng viên tạm mất kết nối. Xin chờ trong giây lát…',
  'room.noVideo': 'Đang chờ hình ảnh…',
  'room.enableSound': 'Bấm vào đây để bật âm thanh',
  'room.fullscreen': 'Toàn màn hình',
  'room.exitFullscreen': 'Thoát toàn màn hình',
  'room.swap': 'Đổi hình lớn / nhỏ',
  'room.raise': 'Giơ tay phát biểu',
  'room.lower': 'Hạ tay',
  'room.handRaised': 'Đã giơ tay — đang chờ giảng viên cho phép phát biểu.',
  'room.onAir': 'LỚP BẠN ĐANG LÊN SÓNG — mọi người đang thấy và nghe lớp bạn',
  'room.goingOnAir': 'Giảng viên đã cho phép phát biểu — đang bật camera và micro…',
  'room.floorEnded': 'Giảng viên đã kết thúc lượt phát biểu của lớp bạn.',
  'room.muteMic': 'Tắt micro',
  'room.unmuteMic': 'Bật micro',
  'room.micMuted': 'Micro đang tắt',
  'room.slides': 'Slide bài giảng',
  'room.trainer': 'Giảng viên',
  'room.speaking': '{name} đang phát biểu',
  'room.you': 'Lớp bạn',
  'room.viewerNote': 'Bạn đang xem (không phát biểu được với đường link này).',
  'room.eventsLost': 'Mất kết nối tới máy chủ — đang thử lại…',
  'room.publishFailed': 'Không bật được camera hoặc micro để phát biểu ({detail}).',

  'lobby.heading': 'Bài giảng trực tuyến',
  'lobby.intro': 'Các buổi học đang diễn ra và sắp diễn ra. Để tham gia, hãy mở đường link trong thư mời của bạn.',
  'lobby.live': 'Đang diễn ra',
  'lobby.upcoming': 'Sắp diễn ra',
  'lobby.other': 'Các buổi khác',
  'lobby.noneLive': 'Hiện không có buổi nào đang phát.',
  'lobby.noneUpcoming': 'Chưa có buổi nào được lên lịch.',
  'lobby.scheduled': 'Lịch: {time}',
  'lobby.openStudio': 'Vào phòng phát',
  'lobby.openRoom': 'Vào lớp học (điểm cầu)',
  'lobby.openWatch': 'Chỉ xem bài giảng',
  'lobby.openReplays': 'Xem lại',
  'lobby.needInvite': 'Cần đường link mời để tham gia.',
  'lobby.inviteHeading': 'Bạn có đường link mời?',
  'lobby.inviteLabel': 'Dán đường link (hoặc mã) mời vào đây',
  'lobby.inviteGo': 'Mở',
  'lobby.inviteBad': 'Không nhận ra đường link mời này. Hãy dán nguyên đường link trong thư mời.',
  'lobby.replaysLink': 'Xem lại các bài giảng đã ghi',
  'lobby.loadFailed': 'Không tải được danh sách buổi học.',

  'admin.heading': 'Quản trị',
  'admin.token': 'Mã quản trị',
  'admin.use': 'Đăng nhập',
  'admin.forget': 'Đăng xuất',
  'admin.signedIn': 'Đang dùng quyền quản trị.',
  'admin.create': 'Tạo buổi học mới',
  'admin.title': 'Tên bài giảng',
  'admin.description': 'Mô tả (không bắt buộc)',
  'admin.scheduled': 'Thời gian bắt đầu (không bắt buộc)',
  'admin.public': 'Ai cũng được xem lại bản ghi (không cần đường link)',
  'admin.listed': 'Hiện buổi học trong danh sách công khai ở trang chủ',
  'admin.createBtn': 'Tạo buổi học',
  'admin.created': 'Đã tạo buổi học “{title}”. Bây giờ hãy tạo lời mời bên dưới.',
  'admin.badToken': 'Mã quản trị không đúng.',
  'admin.invites': 'Tạo lời mời',
  'admin.invitesFor': 'Lời mời cho “{title}”',
  'admin.classrooms': 'Các điểm cầu, mỗi dòng một tên (ví dụ: Hà Nội)',
  'admin.validity': 'Hiệu lực của đường link',
  'admin.days': '{n} ngày',
  'admin.make': 'Tạo đường link mời',
  'admin.copy': 'Sao chép',
  'admin.copied': 'Đã sao chép',
  'admin.copyAll': 'Sao chép toàn bộ thư mời',
  'admin.qr': 'Mã QR',
  'admin.qrFor': 'Mã QR cho {who}',
  'admin.trainer': 'Giảng viên (phòng phát)',
  'admin.viewer': 'Người xem (chỉ xem)',
  'admin.learner': 'Học viên (xem lại bản ghi)',
  'admin.site': 'Điểm cầu {name}',
  'admin.badName': 'Tên điểm cầu “{name}” không dùng được.',
  'admin.inviteText': 'Mời tham dự bài giảng trực tuyến: {title}',
  'admin.inviteWhen': 'Thời gian: {time}',
  'admin.inviteValid': 'Các đường link có hiệu lực đến {time}.',
  'admin.close': 'Đóng',

  'replays.heading': 'Thư viện bài giảng',
  'replays.intro': 'Xem lại các bài giảng đã ghi. Tìm theo tên hoặc theo ngày.',
  'replays.search': 'Tìm theo tên bài giảng',
  'replays.from': 'Từ ngày',
  'replays.to': 'Đến ngày',
  'replays.dateFormat': 'ngày/tháng/năm',
  'replays.badDate': 'Ngày “{value}” không đúng dạng ngày/tháng/năm (ví dụ 07/12/2026).',
  'replays.apply': 'Tìm',
  'replays.more': 'Xem thêm',
  'replays.none': 'Không có bản ghi nào.',
  'replays.unavailable': 'Thư viện bản ghi chưa hoạt động trên máy chủ này. Xin quay lại sau.',
  'replays.needToken': 'Cần đường link của học viên để xem các bản ghi này. Hãy mở đường link trong thư mời.',
  'replays.watch': 'Xem',
  'replays.date': 'Ngày',
  'replays.duration': 'Thời lượng',
  'replays.loading': 'Đang tải…',
  'replays.source': 'Nguồn ghi',
  'replays.title': 'Bài giảng',
  'replays.lostMedia': '(mất {duration})',
  'replays.lostMediaHint': 'Một phần bản ghi bị mất khi ghi (máy chủ hết chỗ lưu tạm); đoạn đó được bỏ qua khi xem.',
  'pub.trainer': 'Giảng viên',
  'pub.site': 'Điểm cầu {name}',

  'player.speed': 'Tốc độ phát',
  'player.download': 'Tải về (MP4)',
  'player.embed': 'Nhúng vào trang khác',
  'player.embedHelp': 'Dán đoạn mã này vào cổng đào tạo để nhúng bài giảng:',
  'player.embedIntro': 'Mã nhúng mang mã truy cập riêng: chỉ để xem bản ghi này, có hạn dùng, và có thể thu hồi bất cứ lúc nào. Không dùng đường link cá nhân của học viên.',
  'player.embedLabel': 'Dùng ở đâu (không bắt buộc)',
  'player.embedValidity': 'Hiệu lực',
  'player.embedCreate': 'Tạo mã nhúng',
  'player.embedList': 'Các mã nhúng đang dùng',
  'player.embedNone': 'Chưa có mã nhúng nào.',
  'player.embedNoLabel': 'Mã nhúng',
  'player.embedUntil': 'dùng được đến {time}',
  'player.embedRevoke': 'Thu hồi',
  'player.embedRevokedOK': 'Đã thu hồi mã nhúng: trang nhúng nó sẽ không phát được nữa.',
  'player.embedRevoked': 'Mã nhúng này đã bị thu hồi hoặc hết hạn. Hãy xin ban tổ chức mã mới.',
  'player.ttlMonth': '30 ngày',
  'player.ttlYear': '1 năm',
  'player.ttlFiveYears': '5 năm',
  'player.resumed': 'Tiếp tục xem từ {time}.',
  'player.restart': 'Xem từ đầu',
  'player.notFound': 'Không tìm thấy bản ghi này.',
  'player.failed': 'Không phát được bản ghi ({detail}).',
  'player.back': 'Về thư viện',
  'player.openFull': 'Mở trong Lectern',
  'player.noSlides': 'Lúc này giảng viên không chia sẻ màn hình.',
  'player.recording': 'Đang ghi — bài giảng chưa kết thúc.',

  'notice.dismiss': 'Đóng thông báo',
};

const en = {
  'lang.switch': 'Tiếng Việt',
  'lang.switchLabel': 'Chuyển sang tiếng Việt',
  'nav.lobby': 'Home',
  'nav.replays': 'Lecture library',
  'nav.skip': 'Skip to the main content',

  'err.title': 'This page cannot open',
  'err.noToken': 'This link has no access code. Open the exact link from your invitation (it contains “?token=…”).',
  'err.badToken': 'The access code is invalid or has expired. Ask the organisers for a new link.',
  'err.forbidden': 'Your link does not give access to this page or to this lecture.',
  'err.wrongRole': 'Your link is for a {role}, not for this page. Open the exact link from your invitation.',
  'err.notFound': 'This lecture was not found. It may have been deleted.',
  'err.network': 'Cannot reach the server. Check the network, then reload the page.',
  'err.server': 'The server has a problem (code {status}). Try again in a few minutes.',
  'err.back': 'Back to home',
  'err.reload': 'Reload the page',
  'err.pageNotFound': 'There is no page at this address.',
  'err.browser': 'This browser is too old for live lectures. Use a recent Chrome, Edge, Firefox or Safari.',
  'err.insecure': 'Browsers allow the camera and microphone only on pages opened over a secure HTTPS connection (an address starting with https://). This page is open at {origin}. Open the link that starts with https://, or ask the administrator to turn on HTTPS on the server.',

  'role.trainer': 'trainer',
  'role.site': 'classroom',
  'role.viewer': 'viewer',
  'role.learner': 'learner (replays)',

  'live.on': 'LIVE',
  'live.off': 'OFF AIR',
  'live.paused': 'CONNECTION LOST',

  'q.label': 'Quality',
  'q.good': 'Good',
  'q.fair': 'Fair',
  'q.poor': 'Poor',
  'q.none': 'None yet',
  'q.details': '{kbps} kbit/s · {loss}% loss · {rtt} ms round trip',
  'stats.bitrate': 'Bitrate',
  'stats.loss': 'Packet loss',
  'stats.rtt': 'Round trip',
  'stats.fps': 'Frames/s',

  'studio.heading': 'Trainer studio',
  'studio.camera': 'Camera',
  'studio.mic': 'Microphone',
  'studio.preview': 'Your picture',
  'studio.slidesPreview': 'Shared screen',
  'studio.goLive': 'Go live',
  'studio.stop': 'Stop',
  'studio.connecting': 'Connecting…',
  'studio.share': 'Share screen (slides)',
  'studio.stopShare': 'Stop sharing the screen',
  'studio.noShare': 'No screen shared. Click “Share screen” so the classrooms see your slides.',
  'studio.elapsed': 'On air for',
  'studio.health': 'Connection',
  'studio.viewers': 'Viewer connections',
  'studio.classrooms': 'Classrooms',
  'studio.noClassrooms': 'Classrooms appear here when they raise a hand or have the floor.',
  'studio.hands': 'Raised hands (in order)',
  'studio.noHands': 'No raised hands.',
  'studio.give': 'Give the floor',
  'studio.giveLabel': 'Give the floor to {name}',
  'studio.takeBack': 'Take back',
  'studio.takeBackLabel': 'Take the floor back from {name}',
  'studio.speakers': 'Has the floor',
  'studio.noSpeakers': 'No classroom has the floor.',
  'studio.waitingSpeaker': 'Waiting for {name} to turn on camera and microphone…',
  'studio.raisedAt': 'raised at {time}',
  'studio.noDevices': 'Cannot use the camera or microphone ({detail}). Allow the browser to use them, then click “Try again”.',
  'studio.retry': 'Try again',
  'studio.publishFailed': 'Could not go live: {detail}',
  'studio.shareFailed': 'Could not share the screen ({detail}).',
  'studio.liveNotice': 'You are live to the classrooms.',
  'studio.offNotice': 'Choose the camera and microphone, check your picture below, then click “Go live”.',
  'studio.lost': 'Lost the connection to the server — going live again…',
  'studio.confirmStop': 'Stop the broadcast?',
  'studio.devices': 'RTSP decoders (halls)',
  'studio.devicesIntro': 'A hall’s hardware decoder, projector or VLC receives the lecture over RTSP with a short code instead of the invitation link.',
  'studio.deviceName': 'Device name',
  'studio.deviceRole': 'The device is',
  'studio.deviceSite': 'A classroom (may raise a hand)',
  'studio.deviceViewer': 'A viewer only',
  'studio.deviceTTL': 'Valid for',
  'studio.ttlDay': '1 day',
  'studio.ttlWeek': '7 days',
  'studio.ttlMonth': '30 days',
  'studio.deviceMint': 'Make a device code',
  'studio.deviceCode': 'Device code (RTSP password)',
  'studio.deviceURL': 'RTSP address',
  'studio.deviceOnce': 'The code is shown only once: enter it in the device now. If it is lost, revoke it and make a new one.',
  'studio.deviceUntil': '{role}, until {time}',
  'studio.deviceRevoke': 'Revoke',
  'studio.deviceRevokeLabel': 'Revoke the code of {name}',
  'studio.deviceFailed': 'Could not make the code: {detail}',

  'room.heading': 'Online classroom',
  'room.waiting': 'The lecture has not started. Picture and sound will appear by themselves when the trainer goes live.',
  'room.ended': 'The lecture has ended. Thank you for following it.',
  'room.watchReplay': 'Watch the replay',
  'room.connecting': 'Connecting to the lecture…',
  'room.reconnecting': 'Network lost — reconnecting by itself…',
  'room.paused': 'The trainer’s connection dropped. Please wait a moment…',
  'room.noVideo': 'Waiting for the picture…',
  'room.enableSound': 'Click here to turn the sound on',
  'room.fullscreen': 'Full screen',
  'room.exitFullscreen': 'Exit full screen',
  'room.swap': 'Swap large / small picture',
  'room.raise': 'Raise hand',
  'room.lower': 'Lower hand',
  'room.handRaised': 'Hand raised — waiting for the trainer to give you the floor.',
  'room.onAir': 'YOUR CLASSROOM IS ON AIR — everyone sees and hears you',
  'room.goingOnAir': 'The trainer gave you the floor — turning on camera and microphone…',
  'room.floorEnded': 'The trainer took the floor back.',
  'room.muteMic': 'Mute microphone',
  'room.unmuteMic': 'Unmute microphone',
  'room.micMuted': 'Microphone muted',
  'room.slides': 'Slides',
  'room.trainer': 'Trainer',
  'room.speaking': '{name} has the floor',
  'room.you': 'Your classroom',
  'room.viewerNote': 'You are watching (this link cannot take the floor).',
  'room.eventsLost': 'Lost the connection to the server — retrying…',
  'room.publishFailed': 'Could not turn on the camera or microphone to speak ({detail}).',

  'lobby.heading': 'Live lectures',
  'lobby.intro': 'Lectures live now and scheduled. To join, open the link in your invitation.',
  'lobby.live': 'Live now',
  'lobby.upcoming': 'Scheduled',
  'lobby.other': 'Other sessions',
  'lobby.noneLive': 'Nothing is live right now.',
  'lobby.noneUpcoming': 'Nothing is scheduled.',
  'lobby.scheduled': 'Starts {time}',
  'lobby.openStudio': 'Open the studio',
  'lobby.openRoom': 'Join as a classroom',
  'lobby.openWatch': 'Watch only',
  'lobby.openReplays': 'Watch replays',
  'lobby.needInvite': 'You need an invitation link to join.',
  'lobby.inviteHeading': 'Have an invitation link?',
  'lobby.inviteLabel': 'Paste the invitation link (or code) here',
  'lobby.inviteGo': 'Open',
  'lobby.inviteBad': 'This is not an invitation link. Paste the whole link from the invitation.',
  'lobby.replaysLink': 'Watch recorded lectures',
  'lobby.loadFailed': 'Could not load the lectures.',

  'admin.heading': 'Administration',
  'admin.token': 'Admin token',
  'admin.use': 'Sign in',
  'admin.forget': 'Sign out',
  'admin.signedIn': 'Signed in as administrator.',
  'admin.create': 'Create a lecture',
  'admin.title': 'Lecture title',
  'admin.description': 'Description (optional)',
  'admin.scheduled': 'Start time (optional)',
  'admin.public': 'Anyone may watch the replays (no link needed)',
  'admin.listed': 'Show this lecture in the public list on the home page',
  'admin.createBtn': 'Create the lecture',
  'admin.created': 'Created “{title}”. Now create the invitations below.',
  'admin.badToken': 'Wrong admin token.',
  'admin.invites': 'Invitations',
  'admin.invitesFor': 'Invitations for “{title}”',
  'admin.classrooms': 'Classrooms, one name per line (e.g. Hà Nội)',
  'admin.validity': 'Links are valid for',
  'admin.days': '{n} days',
  'admin.make': 'Create invitation links',
  'admin.copy': 'Copy',
  'admin.copied': 'Copied',
  'admin.copyAll': 'Copy the whole invitation',
  'admin.qr': 'QR code',
  'admin.qrFor': 'QR code for {who}',
  'admin.trainer': 'Trainer (studio)',
  'admin.viewer': 'Viewer (watch only)',
  'admin.learner': 'Learner (replays)',
  'admin.site': 'Classroom {name}',
  'admin.badName': 'The classroom name “{name}” cannot be used.',
  'admin.inviteText': 'Invitation to the live lecture: {title}',
  'admin.inviteWhen': 'Time: {time}',
  'admin.inviteValid': 'The links are valid until {time}.',
  'admin.close': 'Close',

  'replays.heading': 'Lecture library',
  'replays.intro': 'Watch recorded lectures again. Search by title or by date.',
  'replays.search': 'Search by lecture title',
  'replays.from': 'From',
  'replays.to': 'To',
  'replays.dateFormat': 'dd/mm/yyyy',
  'replays.badDate': 'The date “{value}” is not day/month/year (for example 07/12/2026).',
  'replays.apply': 'Search',
  'replays.more': 'Show more',
  'replays.none': 'No recordings.',
  'replays.unavailable': 'The replay library is not available on this server yet. Please come back later.',
  'replays.needToken': 'You need a learner link to see these recordings. Open the link in your invitation.',
  'replays.watch': 'Watch',
  'replays.date': 'Date',
  'replays.duration': 'Duration',
  'replays.loading': 'Loading…',
  'replays.source': 'Source',
  'replays.title': 'Lecture',
  'replays.lostMedia': '({duration} lost)',
  'replays.lostMediaHint': 'Part of this recording was lost while recording (the server ran out of spool space); playback skips it.',
  'pub.trainer': 'Trainer',
  'pub.site': 'Classroom {name}',

  'player.speed': 'Playback speed',
  'player.download': 'Download (MP4)',
  'player.embed': 'Embed in another site',
  'player.embedHelp': 'Paste this code into the training portal to embed the lecture:',
  'player.embedIntro': 'An embed code carries its own access code: it only plays this recording, it expires, and it can be revoked at any time. Never use a learner’s personal link.',
  'player.embedLabel': 'Where it is used (optional)',
  'player.embedValidity': 'Valid for',
  'player.embedCreate': 'Make an embed code',
  'player.embedList': 'Embed codes in use',
  'player.embedNone': 'No embed codes yet.',
  'player.embedNoLabel': 'Embed code',
  'player.embedUntil': 'valid until {time}',
  'player.embedRevoke': 'Revoke',
  'player.embedRevokedOK': 'Embed code revoked: the pages that embed it can no longer play it.',
  'player.embedRevoked': 'This embed code was revoked or has expired. Ask the organisers for a new one.',
  'player.ttlMonth': '30 days',
  'player.ttlYear': '1 year',
  'player.ttlFiveYears': '5 years',
  'player.resumed': 'Resumed at {time}.',
  'player.restart': 'Start from the beginning',
  'player.notFound': 'This recording was not found.',
  'player.failed': 'The recording cannot be played ({detail}).',
  'player.back': 'Back to the library',
  'player.openFull': 'Open in Lectern',
  'player.noSlides': 'The trainer was not sharing the screen at this point.',
  'player.recording': 'Still recording — the lecture has not ended.',

  'notice.dismiss': 'Dismiss',
};

const dicts = { vi, en };
const listeners = [];
let current = detect();

function detect() {
  const q = new URLSearchParams(location.search).get('lang');
  if (q === 'vi' || q === 'en') return q;
  try {
    const saved = localStorage.getItem('lectern.lang');
    if (saved === 'vi' || saved === 'en') return saved;
  } catch { /* storage may be blocked (embedded players) */ }
  return 'vi';
}

/** The current language, "vi" or "en". */
export function lang() { return current; }

/** The BCP 47 locale for dates and numbers. */
export function locale() { return current === 'vi' ? 'vi-VN' : 'en-GB'; }

/** Text for key in the current language, with {name} placeholders filled from vars. */
export function t(key, vars) {
  let s = dicts[current][key] ?? vi[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

/** Sets the language, remembers it, and re-renders static and dynamic text. */
export function setLang(l) {
  current = l === 'en' ? 'en' : 'vi';
  try { localStorage.setItem('lectern.lang', current); } catch { /* ignore */ }
  apply(document);
  for (const fn of listeners) fn(current);
}

/** Calls fn after every language change (pages re-render their dynamic parts). */
export function onLangChange(fn) { listeners.push(fn); }

/** Translates every element under root that carries data-i18n or data-i18n-attr. */
export function apply(root) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':');
      if (attr && key) el.setAttribute(attr.trim(), t(key.trim()));
    }
  }
}

/** A date and time, e.g. "14:30 12/03/2026". */
export function fmtDateTime(v) {
  const d = v instanceof Date ? v : new Date(v);
  if (Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(d);
}

/** A time of day, e.g. "15:04:05". */
export function fmtTime(v) {
  const d = v instanceof Date ? v : new Date(v);
  if (Number.isNaN(d.getTime())) return '';
  return new Intl.DateTimeFormat(locale(), { timeStyle: 'medium' }).format(d);
}

/** A duration in seconds as H:MM:SS or M:SS. */
export function fmtDuration(sec) {
  if (!Number.isFinite(sec) || sec < 0) return '–';
  sec = Math.floor(sec);
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return (h ? h + ':' : '') + mm + ':' + String(s).padStart(2, '0');
}

/** A number in the current locale. */
export function fmtNumber(n, digits = 0) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(n);
}
