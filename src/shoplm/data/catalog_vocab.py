"""Hand-written vocabularies of the demo catalog: categories, product words, attributes, brands.

Every brand name is invented. Each word comes as an (English, Chinese) pair so that a
product can be rendered in either language from the same draw.
"""

from __future__ import annotations

from dataclasses import dataclass

Pair = tuple[str, str]

COLORS: tuple[Pair, ...] = (
    ("Black", "黑色"),
    ("White", "白色"),
    ("Grey", "灰色"),
    ("Navy", "藏青色"),
    ("Red", "红色"),
    ("Pink", "粉色"),
    ("Green", "绿色"),
    ("Beige", "米色"),
    ("Blue", "蓝色"),
)
CLOTHING_SIZES: tuple[Pair, ...] = (("S", "S码"), ("M", "M码"), ("L", "L码"), ("XL", "XL码"))
SHOE_SIZES: tuple[Pair, ...] = tuple((f"EU {size}", f"{size}码") for size in range(36, 45))
SERVICES: tuple[Pair, ...] = (
    ("Free shipping", "包邮"),
    ("7-day no-questions-asked returns", "七天无理由退货"),
    ("1-year warranty", "一年质保"),
    ("Ships within 24 hours", "24小时发货"),
    ("Genuine product guarantee", "正品保障"),
)


@dataclass(frozen=True)
class Category:
    """One product category with what its products are called and how they differ."""

    slug: str
    name: Pair
    nouns: tuple[Pair, ...]
    brands: tuple[Pair, ...]
    attributes: dict[str, tuple[Pair, ...]]
    features: tuple[Pair, ...]
    price_yuan: tuple[int, int]


CATEGORIES: tuple[Category, ...] = (
    Category(
        slug="audio",
        name=("Audio", "影音耳机"),
        nouns=(
            ("Wireless Earbuds", "蓝牙耳机"),
            ("Noise Cancelling Headphones", "降噪耳机"),
            ("Bluetooth Speaker", "蓝牙音箱"),
            ("Sports Earphones", "运动耳机"),
        ),
        brands=(("Lumio", "流明"), ("Sonara", "声澜"), ("Echofy", "回响")),
        attributes={"color": COLORS[:5], "battery": (("24h battery", "24小时续航"), ("40h battery", "40小时续航"))},
        features=(
            ("delivers deep bass and clear vocals", "低音浑厚人声清晰"),
            ("connects in one second with Bluetooth 5.3", "蓝牙5.3秒连"),
            ("shrugs off rain and sweat", "防水防汗"),
            ("charges fully in an hour", "一小时充满"),
        ),
        price_yuan=(59, 899),
    ),
    Category(
        slug="chargers",
        name=("Chargers & Power", "充电设备"),
        nouns=(
            ("Fast Charger", "快充充电器"),
            ("Power Bank", "充电宝"),
            ("Charging Cable", "充电线"),
            ("Wireless Charger", "无线充电器"),
        ),
        brands=(("Voltix", "伏特"), ("Anchorly", "锚点"), ("Pinecell", "松果")),
        attributes={"color": COLORS[:2], "power": (("20W", "20W"), ("33W", "33W"), ("65W", "65W"))},
        features=(
            ("charges a phone to half in thirty minutes", "三十分钟充至一半"),
            ("is slim enough for a pocket", "轻薄便携可放口袋"),
            ("guards against overheating", "智能温控防过热"),
        ),
        price_yuan=(19, 299),
    ),
    Category(
        slug="computers",
        name=("Computer Accessories", "电脑外设"),
        nouns=(
            ("Mechanical Keyboard", "机械键盘"),
            ("Gaming Mouse", "游戏鼠标"),
            ("Keyboard and Mouse Set", "键鼠套装"),
        ),
        brands=(("Keystone", "键石"), ("Pixelon", "像素龙"), ("Orbix", "轨迹")),
        attributes={"color": COLORS[:3], "variant": (("Wired", "有线版"), ("Wireless", "无线版"))},
        features=(
            ("stays quiet in a shared office", "静音设计不打扰同事"),
            ("works with Windows and macOS", "兼容Windows和macOS"),
            ("runs for months on one battery", "一节电池用几个月"),
        ),
        price_yuan=(39, 999),
    ),
    Category(
        slug="kitchen",
        name=("Kitchen Appliances", "厨房电器"),
        nouns=(
            ("Air Fryer", "空气炸锅"),
            ("Rice Cooker", "电饭煲"),
            ("Electric Kettle", "电热水壶"),
            ("Blender", "破壁机"),
        ),
        brands=(("Hearthly", "炉边"), ("Cookwise", "厨智"), ("Mirae", "米莱")),
        attributes={"color": COLORS[:2] + COLORS[7:8], "capacity": (("1.5L", "1.5升"), ("3L", "3升"), ("5L", "5升"))},
        features=(
            ("heats up in minutes", "加热迅速"),
            ("cleans up in a minute", "一分钟轻松清洗"),
            ("has a food-grade inner pot", "食品级内胆"),
            ("fits on a small counter", "机身小巧不占台面"),
        ),
        price_yuan=(79, 1299),
    ),
    Category(
        slug="home-cleaning",
        name=("Home Cleaning", "家庭清洁"),
        nouns=(("Robot Vacuum", "扫地机器人"), ("Cordless Vacuum", "无线吸尘器"), ("Handheld Vacuum", "手持吸尘器")),
        brands=(("Tidyo", "净途"), ("Dustra", "尘客")),
        attributes={"color": COLORS[:2], "power": (("2000Pa suction", "2000Pa吸力"), ("4000Pa suction", "4000Pa吸力"))},
        features=(
            ("picks up pet hair from carpets", "轻松吸走地毯宠物毛发"),
            ("runs for ninety minutes on one charge", "一次充电续航九十分钟"),
            ("empties without touching the dust", "一键倒尘不脏手"),
        ),
        price_yuan=(149, 2999),
    ),
    Category(
        slug="apparel",
        name=("Apparel", "服装"),
        nouns=(
            ("Cotton T-Shirt", "纯棉T恤"),
            ("Hooded Sweatshirt", "连帽卫衣"),
            ("Slim Fit Jeans", "修身牛仔裤"),
            ("Down Jacket", "羽绒服"),
            ("Summer Dress", "连衣裙"),
        ),
        brands=(("Northwend", "北风"), ("Linea", "线条"), ("Cottonfield", "棉田")),
        attributes={"color": COLORS, "size": CLOTHING_SIZES},
        features=(
            ("feels soft and breathable", "面料柔软透气"),
            ("keeps its shape after washing", "洗后不变形"),
            ("goes with everything in your wardrobe", "百搭不挑人"),
        ),
        price_yuan=(39, 899),
    ),
    Category(
        slug="shoes",
        name=("Shoes", "鞋靴"),
        nouns=(("Running Shoes", "跑步鞋"), ("Canvas Sneakers", "帆布鞋"), ("Hiking Boots", "登山靴")),
        brands=(("Stridex", "步迅"), ("Trailmark", "山径")),
        attributes={"color": COLORS[:6], "size": SHOE_SIZES},
        features=(
            ("cushions every step", "缓震回弹走路不累"),
            ("grips well on wet ground", "湿滑路面抓地稳"),
            ("weighs only 230 grams", "单只仅重230克"),
        ),
        price_yuan=(69, 1199),
    ),
    Category(
        slug="beauty",
        name=("Beauty", "美妆护肤"),
        nouns=(("Moisturizing Cream", "保湿面霜"), ("Sunscreen SPF50", "防晒霜SPF50"), ("Facial Cleanser", "洁面乳")),
        brands=(("Petalia", "花瓣"), ("Lumiskin", "光肌")),
        attributes={"size": (("30ml", "30毫升"), ("50ml", "50毫升"), ("100ml", "100毫升"))},
        features=(
            ("leaves skin soft without feeling greasy", "清爽不油腻"),
            ("is gentle on sensitive skin", "敏感肌可用"),
            ("has no added fragrance", "无添加香精"),
        ),
        price_yuan=(29, 599),
    ),
    Category(
        slug="food",
        name=("Food & Drinks", "食品饮料"),
        nouns=(
            ("Green Tea", "绿茶"),
            ("Coffee Beans", "咖啡豆"),
            ("Mixed Nuts", "每日坚果"),
            ("Dark Chocolate", "黑巧克力"),
        ),
        brands=(("Hillside", "山坡"), ("Goldleaf", "金叶"), ("Nutterly", "果仁家")),
        attributes={
            "weight": (("250g", "250克"), ("500g", "500克"), ("1kg", "1公斤")),
            "pack": (("Gift box", "礼盒装"), ("Bag", "袋装")),
        },
        features=(
            ("is packed fresh in small batches", "小批量新鲜包装"),
            ("has no added sugar", "无添加蔗糖"),
            ("makes a good gift", "送礼佳品"),
        ),
        price_yuan=(19, 399),
    ),
    Category(
        slug="baby",
        name=("Mother & Baby", "母婴"),
        nouns=(("Baby Diapers", "纸尿裤"), ("Diaper Pants", "拉拉裤"), ("Swim Diapers", "游泳纸尿裤")),
        brands=(("Cuddlo", "暖暖"), ("Tinyfeet", "小脚丫")),
        attributes={
            "size": (("Newborn", "新生儿"), ("M", "M码"), ("L", "L码"), ("XL", "XL码")),
            "pack": (("Pack of 3", "3包装"), ("Single pack", "单包")),
        },
        features=(
            ("stays dry through the night", "整夜干爽"),
            ("is free of fragrance", "无香料添加"),
            ("is gentle on delicate skin", "柔软亲肤"),
        ),
        price_yuan=(29, 299),
    ),
    Category(
        slug="fitness",
        name=("Fitness", "运动健身"),
        nouns=(
            ("Yoga Mat", "瑜伽垫"),
            ("Adjustable Dumbbells", "可调节哑铃"),
            ("Resistance Bands", "弹力带"),
            ("Jump Rope", "跳绳"),
        ),
        brands=(("Peakform", "峰形"), ("Wildpath", "野径")),
        attributes={"color": COLORS[:6], "level": (("Beginner", "入门款"), ("Advanced", "进阶款"))},
        features=(
            ("suits daily home workouts", "适合居家日常锻炼"),
            ("stores away in a small space", "收纳不占地方"),
            ("is made of odour-free material", "环保无异味材质"),
        ),
        price_yuan=(19, 1599),
    ),
    Category(
        slug="bags",
        name=("Backpacks", "双肩包"),
        nouns=(("Laptop Backpack", "电脑双肩包"), ("Travel Backpack", "旅行背包"), ("Commuter Backpack", "通勤双肩包")),
        brands=(("Roamly", "漫游"), ("Carryon", "随行")),
        attributes={"color": COLORS[:5] + COLORS[7:], "size": (("15.6-inch", "15.6英寸"), ("17-inch", "17英寸"))},
        features=(
            ("has a padded laptop sleeve", "内置电脑隔层"),
            ("repels light rain", "防泼水面料"),
            ("spreads the weight with padded straps", "减压肩带背着轻松"),
        ),
        price_yuan=(59, 699),
    ),
)
